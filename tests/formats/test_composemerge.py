"""formats/composemerge.py: Compose's merge rules, and positions that follow the values.
(test_deployment.py holds the loader to the real binary on whole deployments.)"""

from __future__ import annotations

from typing import Any

from omnigen.formats import yamlpos
from omnigen.formats.composemerge import Location, Positioned, flatten, merge, strip_tags, where_from_lines


def _file(name: str, text: str) -> Positioned:
    located = yamlpos.load(text)
    return located.data, where_from_lines(located.lines, name)


def _merged(base: str, override: str) -> tuple[Any, dict[Any, Location]]:
    data, where = strip_tags(merge(_file("base", base), _file("over", override)))
    return data, flatten(where)


def test_mappings_merge_and_the_override_wins() -> None:
    data, where = _merged("services:\n  a:\n    image: x\n    user: u\n", "services:\n  a:\n    image: y\n")
    assert data == {"services": {"a": {"image": "y", "user": "u"}}}
    assert where[("services", "a", "image")] == Location("over", 3)
    assert where[("services", "a", "user")] == Location("base", 4)


def test_lists_append_and_positions_follow_items() -> None:
    data, where = _merged("services:\n  a:\n    cap_add: [A]\n", "services:\n  a:\n    cap_add:\n      - B\n      - A\n")
    assert data["services"]["a"]["cap_add"] == ["A", "B"]
    assert where[("services", "a", "cap_add", 1)] == Location("over", 4)


def test_commands_and_healthcheck_tests_are_replaced() -> None:
    data, _ = _merged(
        "services:\n  a:\n    command: [x, y]\n    healthcheck:\n      test: [CMD, ok]\n      interval: 5s\n",
        "services:\n  a:\n    command: [z]\n    healthcheck:\n      test: [NONE]\n",
    )
    assert data["services"]["a"]["command"] == ["z"]
    assert data["services"]["a"]["healthcheck"] == {"test": ["NONE"], "interval": "5s"}


def test_environment_merges_by_key_across_spellings() -> None:
    data, where = _merged("services:\n  a:\n    environment: [A=1, B=2]\n", "services:\n  a:\n    environment:\n      B: 3\n")
    assert data["services"]["a"]["environment"] == {"A": "1", "B": 3}
    assert where[("services", "a", "environment", "A")] == Location("base", 3)
    assert where[("services", "a", "environment", "B")] == Location("over", 4)


def test_volumes_merge_by_target_and_ports_drop_repeats() -> None:
    data, where = _merged(
        "services:\n  a:\n    volumes: ['./x:/data', 'v:/logs']\n    ports: ['80:80']\n",
        "services:\n  a:\n    volumes:\n      - /etc:/data\n    ports: ['80:80', '81:81']\n",
    )
    assert data["services"]["a"]["volumes"] == ["/etc:/data", "v:/logs"]
    assert where[("services", "a", "volumes", 0)] == Location("over", 4)
    assert data["services"]["a"]["ports"] == ["80:80", "81:81"]


def test_reset_and_override_tags() -> None:
    data, where = _merged(
        "services:\n  a:\n    privileged: true\n    ports: ['80:80']\n    cap_add: [A]\n",
        "services:\n  a:\n    privileged: !reset null\n    ports: !override ['127.0.0.1:80:80']\n",
    )
    assert data == {"services": {"a": {"ports": ["127.0.0.1:80:80"], "cap_add": ["A"]}}}
    assert ("services", "a", "privileged") not in where
    assert where[("services", "a", "ports", 0)] == Location("over", 4)
