"""feasibility.py: a valid profile's layout is checked once, and the plan prints that same layout."""

from __future__ import annotations

import shutil
import sys
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnigen.errors import KeyedProblem, ProfileError
from omnigen.inputs.profile import Secrets, validate_model
from omnigen.loading import load, validate
from omnigen.pipeline import build, expected_outputs
from omnigen.plan import capacity
from omnigen.plan.feasibility import Infeasible, Layout, check, layout
from omnigen.plan.make import make_plan
from tests.conftest import ALL_EXAMPLES, ROOT, fake_token


def count_calls(monkeypatch: pytest.MonkeyPatch, *names: str) -> Counter[str]:
    """Count calls of capacity's functions wherever a module bound them by name."""
    calls: Counter[str] = Counter()
    for name in names:
        original = getattr(capacity, name)

        def counting(*args: Any, _name: str = name, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)

        for module in [module for key, module in sys.modules.items() if key == "omnigen" or key.startswith("omnigen.")]:
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counting)
    return calls


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda path: path.stem)
def test_a_build_lays_the_ports_out_once(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / example.name
    shutil.copy(example, profile)
    loaded = load(profile, {})
    calls = count_calls(monkeypatch, "port_plan", "host_port_plan")
    build(profile, tmp_path / "out", environ={}, token=fake_token)
    hosts = len(loaded.profile.hosts)
    # One layout of the profile's own ports: one port_plan, or one host_port_plan per host.
    assert calls == (Counter(host_port_plan=hosts) if hosts else Counter(port_plan=1))


def test_check_and_diff_lay_the_ports_out_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / "webrtc.toml"
    shutil.copy(ROOT / "profiles" / "webrtc.toml", profile)
    calls = count_calls(monkeypatch, "port_plan", "host_port_plan")
    expected_outputs(profile, tmp_path / "out", environ={})
    assert calls == Counter(port_plan=1)


def test_the_plan_prints_the_layout_the_loader_checked() -> None:
    loaded = load(ROOT / "profiles" / "webrtc.toml", {})
    plan = make_plan(loaded.profile, Secrets(**{name: fake_token(name) for name in Secrets.model_fields}), loaded.layout)
    assert loaded.layout.ports is not None
    assert plan.rtp == loaded.layout.ports.ranges["asterisk"] == loaded.layout.first_rtp
    assert plan.webrtc is not None and plan.webrtc.rtp == loaded.layout.ports.ranges["rtpengine"]


BASE = """schema_version = 2
[project]
name = "site"
[network]
public_ip = "203.0.113.10"
[capacity]
concurrent_calls = 50
"""


def test_a_problem_is_keyed_by_the_profile_key_not_by_its_message() -> None:
    text = BASE + "[ports]\nsip = 5060\nhttp = 5060\n"
    model = validate_model(tomllib.loads(text), file="p.toml", text=text, env={})  # the model alone accepts it
    found = check(model)
    assert isinstance(found, tuple) and len(found) == 1 and isinstance(found[0], KeyedProblem)
    assert (found[0].key, found[0].path) == ("ports.http", ("ports", "http"))
    assert found[0].message.startswith("host port 5060 is used by both ports.sip and ports.http")
    with pytest.raises(Infeasible) as caught:
        layout(model)
    assert caught.value.problems == found


def test_the_loader_places_a_problem_at_its_key_or_at_the_variable_that_set_it() -> None:
    text = BASE + "[ports]\nsip = 5060\nhttp = 5060\n"
    with pytest.raises(ProfileError) as caught:
        validate(tomllib.loads(text), file="p.toml", text=text, env={})
    assert caught.value.render().startswith("p.toml:10: ports.http: host port 5060 is used by both ports.sip and ports.http")
    with pytest.raises(ProfileError) as caught:
        validate(tomllib.loads(BASE), file="p.toml", text=BASE, env={"OMNIGEN_PORTS__HTTPS": "5060", "OMNIGEN_PORTS__SIP": "5060"})
    assert caught.value.render().startswith("environment OMNIGEN_PORTS__HTTPS: ports.https: host port 5060 is used by both")


def test_a_feasible_profile_gives_a_layout() -> None:
    loaded = load(ROOT / "profiles" / "multi-host-4.toml", {})
    assert isinstance(loaded.layout, Layout) and loaded.layout.ports is None
    assert [ports.host for ports in loaded.layout.hosts] == [host.name for host in loaded.profile.hosts]
