"""The deployment loader against the real Compose binary: which files it reads,
how it interpolates, merges overrides/extends/include and resolves paths must
match `docker compose config` for every corpus deployment, the reference one
and a generated one."""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
from pathlib import Path
from typing import Any

import pytest

from omnigen.formats.composeports import parse_port
from omnigen.tools.lint import lint
from omnigen.verify.deployment import Deployment
from tests.conftest import EXAMPLES, ROOT, compile_example, compose_binary, write_files
from tests.corpus import cases


def _compose_config(target: Path) -> dict[str, Any]:
    """`docker compose config` as a user would run it: in the folder, or with `-f FILE`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    files = [] if target.is_dir() else ["-f", str(target)]
    folder = target if target.is_dir() else target.parent
    done = subprocess.run(
        [str(compose_binary()), *files, "config", "--format", "json"], cwd=folder, capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # `config` prints a compose file, so a literal `$` comes back escaped as `$$`: undo that.
    config: dict[str, Any] = _unescape(json.loads(done.stdout))
    return config


def _unescape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _unescape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unescape(item) for item in value]
    return value.replace("$$", "$") if isinstance(value, str) else value


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "yes", "on", "y"}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ports(entries: list[Any]) -> set[tuple[str | None, str | None, int, str]]:
    found = set()
    for entry in entries:
        if isinstance(entry, dict) and "mode" in entry:  # Compose's normalised long form
            found.add((entry.get("host_ip") or None, _text(entry.get("published")), int(entry["target"]), entry.get("protocol", "tcp")))
            continue
        spec = parse_port(entry)
        assert spec is not None, entry
        for offset in range(spec.container_end - spec.container_start + 1):
            published = None if spec.host_start is None else str(spec.host_start + offset)
            found.add((spec.host_ip, published, spec.container_start + offset, spec.protocol))
    return found


def _facts(service: dict[str, Any], mounts: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    """What the rules judge, in one shape whatever syntax either side used."""
    check = service.get("healthcheck") or {}
    test = check.get("test")
    return {
        "image": service.get("image"),
        "privileged": _truthy(service.get("privileged")),
        "cap_add": sorted(str(cap).upper() for cap in service.get("cap_add") or []),
        "cap_drop": sorted(str(cap).upper() for cap in service.get("cap_drop") or []),
        "namespaces": {key: service.get(key) for key in ("network_mode", "pid", "ipc", "uts", "userns_mode", "cgroup") if service.get(key)},
        "security_opt": sorted(map(str, service.get("security_opt") or [])),
        "sysctls": {str(key): _text(value) for key, value in (service.get("sysctls") or {}).items()},
        "environment": {str(key): _text(value) for key, value in (service.get("environment") or {}).items()},
        "ports": _ports(service.get("ports") or []),
        "healthcheck": {"disabled": _truthy(check.get("disable")) or test == ["NONE"], "test": _healthcheck_test(test)},
        "mounts": mounts,
    }


def _our_mounts(deployment: Deployment, name: str) -> set[tuple[str, str]]:
    return {(mount.host_path, mount.target) for mount in deployment.mounts(name) if mount.kind == "bind"}


def _their_mounts(service: dict[str, Any]) -> set[tuple[str, str]]:
    # Compose keeps `/etc/` and `//etc//ssh` as written; the kernel resolves them to /etc and /etc/ssh.
    return {("/" + posixpath.normpath(volume["source"]).lstrip("/"), volume["target"]) for volume in service.get("volumes") or [] if volume.get("type") == "bind"}


def _healthcheck_test(value: Any) -> Any:
    # Compose turns a string test into ["CMD-SHELL", test] (so `test: NONE` runs a command called NONE).
    return ["CMD-SHELL", value] if isinstance(value, str) else value


COMPOSE_VALID = [case for case in cases("policy") + cases("drift") if case.compose_valid]


@pytest.mark.parametrize("target", [case.target for case in COMPOSE_VALID] + [ROOT / "tests/reference/omnivoip-v2/prod-env"], ids=lambda p: p.parent.name if p.name == "prod-env" else p.stem)
def test_loader_reads_what_compose_reads(target: Path) -> None:
    theirs = _compose_config(target)["services"]
    deployment = lint([str(target)]).deployments[0]
    ours = deployment.services
    assert sorted(ours) == sorted(theirs)
    for name, service in ours.items():
        assert _facts(service, _our_mounts(deployment, name)) == _facts(theirs[name], _their_mounts(theirs[name])), name


def test_generated_output_reads_the_same(tmp_path: Path) -> None:
    profile = next(path for path in EXAMPLES if path.stem == "vps-nat")
    folder = write_files(tmp_path, compile_example(profile).files)
    theirs = _compose_config(folder)["services"]
    deployment = lint([str(folder)]).deployments[0]
    for name, service in deployment.services.items():
        assert _facts(service, _our_mounts(deployment, name)) == _facts(theirs[name], _their_mounts(theirs[name])), name


TEMPLATES = {
    "PLAIN": "${SET}",
    "BARE": "$SET-suffix",
    "DEFAULT_UNSET": "${UNSET:-fallback}",
    "DEFAULT_EMPTY": "${EMPTY:-fallback}",
    "DASH_EMPTY": "${EMPTY-fallback}",
    "DASH_UNSET": "${UNSET-fallback}",
    "PLUS_SET": "${SET:+alt}",
    "PLUS_EMPTY": "${EMPTY:+alt}",
    "PLUS_EMPTY_DASH": "${EMPTY+alt}",
    "NESTED": "${UNSET:-${SET}-inner}",
    "ESCAPED": "$${SET}",
    "LONE_DOLLAR": "a$ b$1 c$",
    "FROM_ENV_REFERENCE": "${REFERENCE}",
    "DOUBLE_QUOTED": "${QUOTED}",
    "SINGLE_QUOTED": "${LITERAL}",
    "WITH_COMMENT": "${COMMENTED}",
}
DOTENV = """\
SET=value
EMPTY=
REFERENCE=${SET}-and-more
QUOTED="tab\\there \\"q\\" $${SET} ${SET}"
LITERAL='${SET} stays'
COMMENTED=kept # dropped
"""


def test_interpolation_matches_compose(tmp_path: Path) -> None:
    lines = ["services:", "  probe:", '    image: "busybox:1.36"', "    environment:"]
    lines += [f"      {key}: '{template}'" for key, template in TEMPLATES.items()]
    (tmp_path / "compose.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / ".env").write_text(DOTENV)
    theirs = _compose_config(tmp_path)["services"]["probe"]["environment"]
    ours = lint([str(tmp_path)]).deployments[0].service_env("probe")
    assert ours == {key: theirs[key] for key in TEMPLATES}


def test_positions_follow_merged_values(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text('services:\n  app:\n    image: "busybox:1.36"\n    environment:\n      - A=1\n      - B=2\n')
    (tmp_path / "compose.override.yaml").write_text("services:\n  app:\n    environment:\n      B: 3\n      C: 4\n")
    deployment = lint([str(tmp_path)]).deployments[0]
    assert deployment.service_env("app") == {"A": "1", "B": "3", "C": "4"}
    where = {key: (Path(deployment.where("services", "app", "environment", key).file).name, deployment.line("services", "app", "environment", key)) for key in "ABC"}
    assert where == {"A": ("compose.yaml", 5), "B": ("compose.override.yaml", 4), "C": ("compose.override.yaml", 5)}


def test_duplicate_keys_are_reported_as_compose_refuses_them(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text('services:\n  app:\n    image: "busybox:1.36"\n    privileged: false\n    privileged: true\n')
    findings = lint([str(tmp_path)]).report.findings
    assert ("OV000", 5) in {(f.rule_id, f.line) for f in findings}
    assert ("OV101", 5) in {(f.rule_id, f.line) for f in findings}, "the value Compose would not even accept is still judged"


@pytest.mark.parametrize("env_file", [".env", "site.env"])
def test_a_byte_order_mark_in_an_env_file_is_skipped_as_compose_skips_it(tmp_path: Path, env_file: str) -> None:
    service = '    image: "busybox:1.36"\n' + ('    environment:\n      FROM_ENV: "${FIRST}"\n' if env_file == ".env" else f"    env_file: ./{env_file}\n")
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n" + service)
    (tmp_path / env_file).write_bytes(b"\xef\xbb\xbfFIRST=one\nSECOND=two\n")
    theirs = _compose_config(tmp_path)["services"]["app"]["environment"]
    result = lint([str(tmp_path)])
    assert not [finding for finding in result.report.findings if finding.severity == "error"]
    ours = result.deployments[0].service_env("app")
    assert ours == theirs and "one" in ours.values()


def test_an_extends_loop_is_reported_as_a_loop(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  a:\n    image: busybox:1.36\n    extends: b\n"
        "  b:\n    image: busybox:1.36\n    extends: c\n"
        "  c:\n    image: busybox:1.36\n    extends: a\n"
        "  self:\n    image: busybox:1.36\n    extends: self\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    refused = subprocess.run([str(compose_binary()), "config"], cwd=tmp_path, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert refused.returncode != 0 and "Circular reference" in refused.stderr  # the real Compose refuses it too
    messages = [finding.message for finding in lint([str(tmp_path)]).report.findings if finding.rule_id == "OV000"]
    assert any("extends loops back: a -> b -> c -> a" in message or "extends loops back: b -> c -> a -> b" in message for message in messages), messages
    assert any("extends loops back: self -> self" in message for message in messages), messages
    assert not any("cannot be found" in message for message in messages)
