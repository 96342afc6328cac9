"""The build fingerprint: every input that shapes the output changes it, nothing else does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from omnigen.inputs import fingerprint as fp
from omnigen.inputs.profile import secrets_path_for


def test_sidecar_path_agrees_with_the_profile_loader() -> None:
    for profile in (Path("omnivoip.toml"), Path("deploy/acme.site.toml"), Path("/abs/x.toml")):
        assert fp.sidecar_path(profile) == secrets_path_for(profile)


def test_every_input_changes_the_fingerprint() -> None:
    base = fp.fingerprint(b"profile", b"secrets", {"OMNIGEN_X": "1", "HOME": "/root"})
    variants = [
        fp.fingerprint(b"profile ", b"secrets", {"OMNIGEN_X": "1"}),
        fp.fingerprint(b"profile", b"secrets2", {"OMNIGEN_X": "1"}),
        fp.fingerprint(b"profile", None, {"OMNIGEN_X": "1"}),
        fp.fingerprint(b"profile", b"secrets", {"OMNIGEN_X": "2"}),
        fp.fingerprint(b"profile", b"secrets", {"OMNIGEN_X": "1", "omnigen_y": "0"}),  # case-insensitive prefix
        fp.fingerprint(b"profile", b"secrets", {}),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_unrelated_environment_does_not_change_it() -> None:
    assert fp.fingerprint(b"p", b"s", {"OMNIGEN_A": "1", "PATH": "/bin"}) == fp.fingerprint(b"p", b"s", {"OMNIGEN_A": "1", "TZ": "UTC"})


def test_environment_values_that_are_not_utf8_are_hashed_not_fatal() -> None:
    undecodable = b"\xff\xfe".decode("utf-8", "surrogateescape")
    assert fp.fingerprint(b"p", None, {"OMNIGEN_A": undecodable}) != fp.fingerprint(b"p", None, {"OMNIGEN_A": "x"})


def test_code_identity_covers_templates_and_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed template (or module) without a version bump must invalidate the fast path of check."""
    package = tmp_path / "omnigen"
    shutil.copytree(Path(fp.__file__).parent.parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    if not (package / "templates").is_dir():
        shutil.copytree(fp._templates_dir(), tmp_path / "templates")
    monkeypatch.setattr(fp, "_PACKAGE", package)
    compute = fp.code_identity.__wrapped__
    original = compute()
    template = next((package / "templates").rglob("*.j2")) if (package / "templates").is_dir() else next((tmp_path / "templates").rglob("*.j2"))
    template.write_text(template.read_text() + "\n")
    changed_template = compute()
    (package / "plan" / "plan.py").write_text((package / "plan" / "plan.py").read_text() + "\n# changed\n")
    changed_module = compute()
    assert len({original, changed_template, changed_module}) == 3
