"""Load a profile for a command: the model (profile.py), then whether it can be deployed (feasibility.py).

The one loader of build, check, diff, explain, doctor, import, migrate and the scaffold
check. A problem the plan layer finds is reported like a validation error, at the line of
the key to change (or the OMNIGEN_* variable that set it), exit 2. `Loaded.layout` is the
layout it checked, which the plan prints: `port_plan` runs once per build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnigen.errors import ProfileError
from omnigen.inputs import profile
from omnigen.inputs.profile import Profile
from omnigen.plan import feasibility
from omnigen.plan.feasibility import Layout


@dataclass(frozen=True)
class Loaded:
    """A profile that can be deployed, and the port layout that showed it."""

    profile: Profile
    layout: Layout


def _feasible(model: Profile, *, file: str, text: str, env: dict[str, str]) -> Loaded:
    found = feasibility.check(model)
    if not isinstance(found, Layout):
        raise ProfileError([profile.issue_at(problem, file=file, text=text, env=env) for problem in found])
    return Loaded(model, found)


def validate(data: dict[str, Any], *, file: str, text: str, env: dict[str, str]) -> Loaded:
    """Validate a parsed profile (with OMNIGEN_* overrides in `env`) and check that it can be deployed."""
    return _feasible(profile.validate_model(data, file=file, text=text, env=env), file=file, text=text, env=env)


def load(path: Path, environ: dict[str, str] | None = None) -> Loaded:
    """Read, override from the environment, validate and check a profile file."""
    source = profile.read_profile_source(path, environ)
    return _feasible(profile.validate_model(source.data, file=source.file, text=source.text, env=source.env), file=source.file, text=source.text, env=source.env)


def load_profile(path: Path, environ: dict[str, str] | None = None) -> Profile:
    """`load(...).profile`: for callers that plan from the profile alone."""
    return load(path, environ).profile


def validate_profile(data: dict[str, Any], *, file: str, text: str, env: dict[str, str]) -> Profile:
    """`validate(...).profile`."""
    return validate(data, file=file, text=text, env=env).profile
