"""build(): the order of load, compile, sidecar and write, under failures."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from omnigen.errors import OutputError, ProfileError
from omnigen.fingerprint import fingerprint
from omnigen.formats import dotenv
from omnigen.pipeline import build, expected_outputs
from omnigen.profile import SECRET_NAMES
from omnigen.write import read_manifest, recorded_files_match
from tests.conftest import ROOT, fake_token, make_fake_checkout
from tests.faults import Faults, copy_tree, photograph
from tests.fuzzing import SECRET_ENV_KEYS as ENV_SECRET_KEYS


def make_site(folder: Path, calls: int = 50) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make_fake_checkout(folder.parent / "omnivoip")  # build.source = "../omnivoip"
    text = (ROOT / "profiles" / "vps-nat.toml").read_text()
    profile = folder / "site.toml"
    profile.write_text(text.replace("concurrent_calls = 50", f"concurrent_calls = {calls}"))
    return profile


def sidecar_of(profile: Path) -> dict[str, str]:
    return {key: str(value) for key, value in tomllib.loads(profile.with_name("site.secrets.toml").read_text()).items()}


def env_of(out: Path) -> dict[str, str]:
    return dotenv.as_dict(dotenv.parse((out / ".env").read_text()))


def test_build_records_the_fingerprint_of_its_inputs(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    out = tmp_path / "out"
    env = {"OMNIGEN_CAPACITY__HEADROOM_PERCENT": "30"}
    build(profile, out, environ=env, token=fake_token)
    manifest, _ = read_manifest(out)
    assert manifest is not None
    sidecar = profile.with_name("site.secrets.toml").read_bytes()
    assert manifest.fingerprint == fingerprint(profile.read_bytes(), sidecar, env)
    assert recorded_files_match(out, fingerprint(profile.read_bytes(), sidecar, env)) is not None
    assert recorded_files_match(out, fingerprint(profile.read_bytes(), sidecar, {})) is None


def test_secrets_reach_the_env_file_exactly_as_in_the_sidecar(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    build(profile, tmp_path / "out", environ={})
    secrets = sidecar_of(profile)
    assert set(secrets) == set(SECRET_NAMES)
    env = env_of(tmp_path / "out")
    for name, key in ENV_SECRET_KEYS.items():
        assert env[key] == secrets[name]


def test_sidecar_is_private_and_stays_private(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    sidecar = profile.with_name("site.secrets.toml")
    previous = os.umask(0o000)
    try:
        build(profile, tmp_path / "out", environ={})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    os.chmod(sidecar, 0o644)
    build(profile, tmp_path / "out", environ={})
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600


def test_symlinked_sidecar_is_not_written_through(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    target = tmp_path / "vault" / "real.toml"
    target.parent.mkdir()
    target.write_text('postgres_password = "kept-as-is-1"\n')
    profile.with_name("site.secrets.toml").symlink_to(target)
    with pytest.raises(OutputError, match="symlink"):
        build(profile, tmp_path / "out", environ={})  # six secrets are missing and would be written
    assert target.read_text() == 'postgres_password = "kept-as-is-1"\n'
    assert not (tmp_path / "out").exists()


def test_refused_build_generates_no_secrets(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    out = tmp_path / "out"
    build(profile, out, environ={})
    sidecar = profile.with_name("site.secrets.toml")
    kept = "\n".join(line for line in sidecar.read_text().splitlines() if not line.startswith("redis_password")) + "\n"
    sidecar.write_text(kept)
    (out / "docker-compose.yml").write_text("# mine\n")
    with pytest.raises(OutputError, match=r"docker-compose\.yml"):
        build(profile, out, environ={})
    assert sidecar.read_text() == kept, "a refused build must not write the sidecar"


def test_bad_input_touches_nothing(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    out = tmp_path / "out"
    build(profile, out, environ={})
    before = photograph(tmp_path)
    profile.write_text(profile.read_text().replace("concurrent_calls = 50", "concurrent_calls = -1"))
    with pytest.raises(ProfileError):
        build(profile, out, environ={})
    after = photograph(tmp_path)
    assert {k: v for k, v in after.items() if k != "site.toml"} == {k: v for k, v in before.items() if k != "site.toml"}


def _count(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[str]:
    scratch = copy_tree(folder, folder.with_name("count"))
    with monkeypatch.context() as patch:
        faults = Faults().install(patch)
        build(scratch / "site.toml", scratch / "out", environ={}, token=fake_token)
    return faults.calls


def test_first_build_failing_at_any_step_keeps_generated_secrets_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sidecar yet: wherever the build fails, either nothing exists, or the sidecar
    holds every secret and the next build deploys exactly those (never regenerates)."""
    base = tmp_path / "base"
    make_site(base)
    steps = _count(monkeypatch, base)
    kept_secrets = 0
    for step, name in enumerate(steps):
        folder = copy_tree(base, tmp_path / f"run-{step}")
        profile = folder / "site.toml"
        with monkeypatch.context() as patch:
            Faults(fail_at=step).install(patch)
            try:
                build(profile, folder / "out", environ={})
                failed = False
            except (OutputError, ProfileError) as error:  # ProfileError: reading the profile failed (inputs are read with os.open too)
                assert "injected failure" in str(error), (step, name)
                failed = True
        sidecar = folder / "site.secrets.toml"
        if failed:
            assert photograph(folder / "out") == {}, f"step {step} (os.{name}) left output behind"
        if sidecar.exists():
            kept_secrets += failed
            secrets = sidecar_of(profile)
            assert set(secrets) == set(SECRET_NAMES)
            assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
            build(profile, folder / "out", environ={})
            assert sidecar_of(profile) == secrets, "secrets must never be regenerated"
            env = env_of(folder / "out")
            assert {name: env[key] for name, key in ENV_SECRET_KEYS.items()} == {name: secrets[name] for name in ENV_SECRET_KEYS}
    assert kept_secrets > 10, "the output write fails after the sidecar is written in most steps"


def test_rebuild_failing_at_any_step_leaves_output_and_secrets_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "base"
    make_site(base)
    build(base / "site.toml", base / "out", environ={}, token=fake_token)
    make_site(base, calls=60)  # new inputs: every RTP-bearing file changes
    steps = _count(monkeypatch, base)
    assert steps.count("replace") >= 4
    for step, name in enumerate(steps):
        folder = copy_tree(base, tmp_path / f"run-{step}")
        before = photograph(folder)
        with monkeypatch.context() as patch:
            Faults(fail_at=step).install(patch)
            try:
                build(folder / "site.toml", folder / "out", environ={}, token=fake_token)
            except (OutputError, ProfileError):  # ProfileError: reading an input failed (inputs are read with os.open too)
                after = {path: value for path, value in photograph(folder).items() if "/.omnigen-staging-" not in path}
                assert after == before, f"step {step} (os.{name}) changed the folder"


def test_expected_outputs_never_writes(tmp_path: Path) -> None:
    profile = make_site(tmp_path)
    before = photograph(tmp_path)
    expected = expected_outputs(profile, None, environ={})
    assert expected.missing_secrets == tuple(SECRET_NAMES)
    assert expected.out_dir == profile.parent / "out" / "vps-nat"
    assert photograph(tmp_path) == before


def test_turning_a_component_off_removes_its_files_unless_edited(tmp_path: Path) -> None:
    """Files of an earlier build that this build no longer produces are removed (obsolete), edited ones kept."""
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "webrtc.toml").read_text())
    out = tmp_path / "out"
    with_webrtc = build(profile, out, environ={}, token=fake_token).compiled.files
    without = build(profile, out, environ={"OMNIGEN_COMPONENTS__WEBRTC": "false"}, token=fake_token)
    gone = sorted(set(with_webrtc) - set(without.compiled.files))
    assert gone and sorted(without.report.removed) == gone
    assert not any((out / name).exists() for name in gone)
    build(profile, out, environ={}, token=fake_token)
    edited = out / gone[0]
    edited.write_text(edited.read_text() + "# mine\n")
    again = build(profile, out, environ={"OMNIGEN_COMPONENTS__WEBRTC": "false"}, token=fake_token)
    assert gone[0] in again.report.foreign and edited.read_text().endswith("# mine\n")
