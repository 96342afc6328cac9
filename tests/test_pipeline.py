"""build(): the order of load, compile, sidecar and write, under failures."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from omnigen.errors import OutputError, ProfileError
from omnigen.formats import dotenv
from omnigen.inputs.fingerprint import fingerprint, tls_source_bytes
from omnigen.inputs.profile import SECRET_NAMES
from omnigen.pipeline import build, expected_outputs
from omnigen.write.outputs import read_manifest, recorded_files_match
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
    certificate = tls_source_bytes(profile, profile.read_bytes(), env)
    assert certificate is not None
    assert manifest.fingerprint == fingerprint(profile.read_bytes(), sidecar, env, certificate)
    assert recorded_files_match(out, fingerprint(profile.read_bytes(), sidecar, env, certificate)) is not None
    assert recorded_files_match(out, fingerprint(profile.read_bytes(), sidecar, {}, certificate)) is None
    assert recorded_files_match(out, fingerprint(profile.read_bytes(), sidecar, env, b"another certificate")) is None


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


def test_first_build_failing_at_any_step_leaves_no_secrets_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sidecar yet: wherever the build fails, it undoes its writes and takes its generated
    secrets back (nothing survives: no sidecar, no output); where it succeeds
    despite the fault (a best-effort step), the next build deploys exactly those secrets."""
    base = tmp_path / "base"
    make_site(base)
    steps = _count(monkeypatch, base)
    failures = 0
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
            failures += 1
            assert photograph(folder / "out") == {}, f"step {step} (os.{name}) left output behind"
            left = sorted(path.name for path in folder.iterdir())
            assert left == ["site.toml"], f"step {step} (os.{name}) left {left} behind"
            continue
        secrets = sidecar_of(profile)
        assert set(secrets) == set(SECRET_NAMES)
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
        build(profile, folder / "out", environ={})
        assert sidecar_of(profile) == secrets, "secrets must never be regenerated"
        assert _secrets_in(folder / "out") == {name: secrets[name] for name in ENV_SECRET_KEYS}
    assert failures > 10, "most steps of a first build can fail"


def test_failed_write_that_could_not_undo_itself_keeps_the_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the rollback is incomplete, an output may hold the new secrets: the sidecar keeps them."""
    import omnigen.pipeline

    profile = make_site(tmp_path)

    def half_written(*args: object, before_write: object, **kwargs: object) -> None:
        assert callable(before_write)
        before_write()
        raise OutputError("cannot write the output; could not restore everything", folder_changed=True)

    monkeypatch.setattr(omnigen.pipeline, "write_outputs", half_written)
    with pytest.raises(OutputError):
        build(profile, tmp_path / "out", environ={}, token=fake_token)
    assert set(sidecar_of(profile)) == set(SECRET_NAMES)


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


# A build process that waits for its orders: imports and template compilation happen once, before
# the race, so two processes given the same order at the same moment really do build at the same time.
_RACER = r"""
import json, sys
from omnigen.cli import main
for line in sys.stdin:
    code = main(json.loads(line))
    sys.stdout.write(f"EXIT {code}\n")
    sys.stdout.flush()
"""


class _Racer:
    def __init__(self, cwd: Path) -> None:
        import subprocess
        import sys

        env = {key: value for key, value in os.environ.items() if not key.upper().startswith("OMNIGEN_")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RACER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd, env=env
        )

    def order(self, *argv: str) -> None:
        import json

        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(list(argv)) + "\n")
        self.process.stdin.flush()

    def result(self) -> int:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("EXIT "), line
        return int(line.split()[1])

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def _secrets_in(out: Path) -> dict[str, str]:
    env = env_of(out)
    return {name: env[key] for name, key in ENV_SECRET_KEYS.items()}


@pytest.mark.parametrize("same_folder", [True, False], ids=["same-folder", "two-folders"])
def test_racing_first_builds_deploy_the_secrets_of_the_sidecar(tmp_path: Path, same_folder: bool) -> None:
    """Two real processes build a new profile at the same moment, 20 times: both succeed
    and every folder written holds exactly the secrets the sidecar holds."""
    racers = [_Racer(tmp_path), _Racer(tmp_path)]
    try:
        warm = make_site(tmp_path / "warm")
        for racer in racers:  # import everything and compile the templates before racing
            racer.order("build", "-q", str(warm), "-o", str(tmp_path / "warm" / "out"))
            assert racer.result() == 0
        for round_number in range(20):
            folder = tmp_path / f"round-{round_number}"
            profile = make_site(folder)
            outs = [folder / "out"] * 2 if same_folder else [folder / "out-a", folder / "out-b"]
            for racer, out in zip(racers, outs, strict=True):
                racer.order("build", "-q", str(profile), "-o", str(out))
            codes = [racer.result() for racer in racers]
            assert codes == [0, 0], f"round {round_number}: exit codes {codes}"
            sidecar = sidecar_of(profile)
            for out in set(outs):
                assert _secrets_in(out) == {name: sidecar[name] for name in ENV_SECRET_KEYS}, f"round {round_number}: {out}"
    finally:
        for racer in racers:
            racer.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to a container's user")
@pytest.mark.parametrize("name", ["vps-nat", "multi-host-2"])
def test_a_root_build_gives_the_asterisk_secret_files_to_the_asterisk_user(tmp_path: Path, name: str) -> None:
    from omnigen.catalog.application import ASTERISK_GID, ASTERISK_UID
    from omnigen.plan.plan import ASTERISK_SECRET_FILES

    make_fake_checkout(tmp_path / "omnivoip")
    profile = tmp_path / "site" / "site.toml"
    profile.parent.mkdir()
    profile.write_text((ROOT / "profiles" / f"{name}.toml").read_text())
    out = tmp_path / "site" / "out"
    result = build(profile, out, environ={}, token=fake_token)
    assert result.handover_problem is None
    plans = [("", result.compiled.plan)] if result.compiled.plan.cluster is None else []
    plans += [(f"{folder}/", part) for folder, part in result.compiled.plan.bundles if part.runs("asterisk")]
    assert plans, "the profile runs Asterisk somewhere"
    for prefix, _ in plans:
        for relative in ASTERISK_SECRET_FILES:
            found = os.stat(out / f"{prefix}{relative}")
            # Asterisk runs as this user and reads them through a bind mount; nobody else may read them.
            assert (found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)) == (ASTERISK_UID, ASTERISK_GID, 0o600), prefix + relative
