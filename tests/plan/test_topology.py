"""plan/make.make_topology: the plan without secrets that explain and doctor print from.

No secret is generated, read or made up for a command that writes nothing, and the topology is
the same code as the build's plan (no fact computed twice): its non-secret values equal the plan's.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from omnigen.cli import main
from omnigen.inputs import credentials
from omnigen.inputs.profile import Secrets
from omnigen.loading import load
from omnigen.plan.make import make_plan, make_topology
from omnigen.render import render
from tests.conftest import ALL_EXAMPLES, ROOT, fake_token
from tests.plan.test_feasibility import count_calls


def _secrets() -> Secrets:
    return Secrets(**{name: fake_token(name) for name in Secrets.model_fields})


@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=lambda path: path.stem)
def test_the_topology_is_the_plan_without_its_secrets(example: Path) -> None:
    loaded = load(example, {})
    plan = make_plan(loaded.profile, _secrets(), loaded.layout)
    topology = make_topology(loaded.profile, loaded.layout)
    assert topology.secrets_withheld and not plan.secrets_withheld
    assert all(part.secrets_withheld for _, part in topology.bundles) and not any(part.secrets_withheld for _, part in plan.bundles)
    assert topology.asterisk is None
    assert not any(var.secret for section in topology.env for var in section.variables)
    secrets = {value for value in _secrets().model_dump().values()}
    assert not any(var.value in secrets for section in topology.env for var in section.variables)
    # Everything that needs no secret is the plan's, computed by the same code.
    plain = [(section.title, [var for var in section.variables if not var.secret]) for section in plan.env]
    assert [(section.title, list(section.variables)) for section in topology.env] == plain
    assert topology.all_published == plan.all_published
    assert topology.network == plan.network
    assert topology.images == plan.images
    assert topology.firewall == plan.firewall
    assert topology.warnings == plan.warnings


@pytest.mark.parametrize("name", ["webrtc", "multi-host-2"])
def test_render_refuses_a_topology_and_each_of_its_bundles(name: str) -> None:
    loaded = load(ROOT / "profiles" / f"{name}.toml", {})
    topology = make_topology(loaded.profile, loaded.layout)
    for part in (topology, *(part for _, part in topology.bundles)):
        with pytest.raises(RuntimeError, match="topology"):
            render(part)


def _refuse_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a command that writes nothing asked for secrets")

    monkeypatch.setattr(credentials, "resolve", refused)
    monkeypatch.setattr(Secrets, "model_validate", refused)
    monkeypatch.setattr(Secrets, "__init__", refused)


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.mark.parametrize("name", ["webrtc", "multi-host-2"])
def test_explain_and_doctor_use_no_secret_and_lay_the_ports_out_once(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / f"{name}.toml"
    shutil.copy(ROOT / "profiles" / f"{name}.toml", profile)
    hosts = len(load(profile, {}).profile.hosts)
    _refuse_secrets(monkeypatch)
    for argv in (("explain", str(profile), "--format", "json"), ("doctor", str(profile), "--root", str(tmp_path), "--format", "json")):
        calls = count_calls(monkeypatch, "port_plan", "host_port_plan")
        code, out = _run(*argv)
        assert code in (0, 1) and out, argv
        assert calls == ({"host_port_plan": hosts} if hosts else {"port_plan": 1}), argv
        monkeypatch.undo()
        _refuse_secrets(monkeypatch)
    assert sorted(path.name for path in tmp_path.iterdir()) == [profile.name], "no sidecar, no output"
