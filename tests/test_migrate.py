"""`omnigen migrate` as users run it, and what `omnigen build` says about an old profile."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.conftest import ROOT, run_cli

TYPICAL_V0 = ROOT / "tests" / "migrations" / "0-to-1" / "typical.toml"


def old_profile(folder: Path, name: str = "site.toml") -> Path:
    path = folder / name
    path.write_text(TYPICAL_V0.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_build_refuses_an_old_profile_and_names_the_fix(tmp_path: Path) -> None:
    profile = old_profile(tmp_path)
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{profile}:4: schema_version: 0 is an older format; this omnigen reads schema_version 2" in result.stderr
    assert f"run `omnigen migrate {profile}`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, "one clear message, not one per renamed key"
    unversioned = tmp_path / "bare.toml"
    unversioned.write_text('[project]\nname = "a"\n[capacity]\ncalls = 5\n')
    result = run_cli("build", str(unversioned), "-o", str(tmp_path / "out2"))
    assert result.returncode == 2 and "missing, so this is a pre-release (schema 0) profile" in result.stderr


def test_migrate_in_place_then_build(tmp_path: Path) -> None:
    profile = old_profile(tmp_path)
    os.chmod(profile, 0o640)
    result = run_cli("migrate", str(profile))
    assert result.returncode == 0, result.stderr
    assert f"{profile}: migrated schema_version 0 -> 2" in result.stdout
    assert "capacity.concurrent_calls: renamed from capacity.calls" in result.stdout
    assert "valid; 50 calls -> RTP 12000-" in result.stdout
    assert stat.S_IMODE(profile.stat().st_mode) == 0o640, "the file keeps its permissions"
    text = profile.read_text()
    assert "# Peak is about 40 calls on Mondays; keep some slack." in text
    assert "concurrent_calls = 50  # bridged calls" in text
    built = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr

    again = run_cli("migrate", str(profile))
    assert again.returncode == 0 and "is current; nothing to do" in again.stdout
    assert profile.read_text() == text


def test_check_mode_for_ci(tmp_path: Path) -> None:
    old = old_profile(tmp_path, "old.toml")
    current = tmp_path / "current.toml"
    current.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    before = old.read_bytes()
    result = run_cli("migrate", "--check", str(old), str(current))
    assert result.returncode == 1
    assert f"{old}: schema_version 0 needs migrating to 2" in result.stdout
    assert f"{current}: schema_version 2 is current" in result.stdout
    assert old.read_bytes() == before, "--check never writes"
    assert run_cli("migrate", "--check", str(current)).returncode == 0


def test_migrate_skips_the_secrets_sidecars_a_glob_also_matches(tmp_path: Path) -> None:
    current = tmp_path / "site.toml"
    current.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    assert run_cli("build", str(current), "-o", str(tmp_path / "out")).returncode == 0
    sidecar = tmp_path / "site.secrets.toml"
    before = sidecar.read_bytes()
    result = run_cli("migrate", "--check", str(current), str(sidecar))
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(sidecar) not in result.stdout + result.stderr
    assert sidecar.read_bytes() == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    profile = tmp_path / "future.toml"
    text = (ROOT / "profiles" / "vps-nat.toml").read_text().replace("schema_version = 2", "schema_version = 3")
    profile.write_text(text)
    for args in (["migrate", str(profile)], ["migrate", "--check", str(profile)]):
        result = run_cli(*args)
        assert result.returncode == 2
        assert "this profile is for a newer omnigen (schema_version 3; this one knows versions up to 2); upgrade omnigen" in result.stderr
        assert "Traceback" not in result.stderr
    assert profile.read_text() == text


def test_migrated_but_still_invalid_exits_2_with_located_problems(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text('schema_version = 0\n[project]\nname = "a"\n[capacity]\ncalls = 5\n')  # no address to advertise
    result = run_cli("migrate", str(profile))
    assert result.returncode == 2
    assert "migrated, but the profile does not validate yet" in result.stderr
    assert "no address to advertise" in result.stderr
    assert "concurrent_calls = 5" in profile.read_text(), "the format change itself is written"


def test_unreadable_inputs(tmp_path: Path) -> None:
    missing = run_cli("migrate", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "file not found" in missing.stderr
    conflict = tmp_path / "both.toml"
    conflict.write_text("schema_version = 0\n[capacity]\ncalls = 5\nconcurrent_calls = 6\n")
    result = run_cli("migrate", str(conflict))
    assert result.returncode == 2 and "both capacity.calls (schema 0) and capacity.concurrent_calls are set" in result.stderr
    assert conflict.read_text().startswith("schema_version = 0"), "nothing written on a refusal"
