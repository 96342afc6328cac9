"""omnigen build: every example profile, every output file, pinned by snapshots."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from omnigen.plan.plan import OUTPUTS
from tests.conftest import EXAMPLES, ROOT, compile_example, make_fake_checkout, run_cli, snapshot_suffix


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda p: p.stem)
def test_file_list(profile: Path, snapshot_as) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_example(profile)
    assert snapshot_as("txt") == "\n".join(compiled.files) + "\n"


@pytest.mark.parametrize(
    ("profile", "relative"),
    [(profile, dest) for profile in EXAMPLES for _, dest in OUTPUTS],
    ids=lambda value: value.stem if isinstance(value, Path) else value.replace("/", "_").lstrip("."),
)
def test_output_snapshot(profile: Path, relative: str, snapshot_as) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_example(profile)
    assert snapshot_as(snapshot_suffix(relative)) == compiled.files[relative]


def test_build_writes_outputs_and_secrets(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for _, dest in OUTPUTS:
        assert (out / dest).is_file(), dest
    assert stat.S_IMODE((out / ".env").stat().st_mode) == 0o600
    sidecar = tmp_path / "site.secrets.toml"
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    first_secrets = sidecar.read_text()
    first_env = (out / ".env").read_text()

    again = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert again.returncode == 0, again.stderr
    assert sidecar.read_text() == first_secrets, "secrets must never be regenerated"
    assert (out / ".env").read_text() == first_env


def test_no_profile_builds_packaged_default(tmp_path: Path) -> None:
    result = run_cli("build", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "lan-office" / "docker-compose.yml").is_file()
    assert (tmp_path / "out" / "lan-office.secrets.toml").is_file()


def test_default_output_sits_beside_the_profile_wherever_build_runs(tmp_path: Path) -> None:
    """Like the sidecar: a build run from another folder leaves no credentials there."""
    site = tmp_path / "site"
    elsewhere = tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    make_fake_checkout(tmp_path / "omnivoip")  # build.source = "../omnivoip", beside site/
    (site / "omnivoip.toml").write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    result = run_cli("build", "../site/omnivoip.toml", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("../site/out/vps-nat: "), result.stdout
    assert (site / "out" / "vps-nat" / ".env").is_file() and (site / "omnivoip.secrets.toml").is_file()
    assert list(elsewhere.iterdir()) == []
    # check and diff look in the same place, from anywhere.
    assert run_cli("check", "../site/omnivoip.toml", cwd=elsewhere).returncode == 0
    assert run_cli("check", "omnivoip.toml", cwd=site).returncode == 0
    assert run_cli("diff", str(site / "omnivoip.toml"), cwd=tmp_path).returncode == 0


def test_batch_without_output_builds_each_profile_beside_itself(tmp_path: Path) -> None:
    make_fake_checkout(tmp_path / "omnivoip")
    for name in ("vps-nat", "rootless"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "site.toml").write_text((ROOT / "profiles" / f"{name}.toml").read_text())
    result = run_cli("build", "vps-nat/site.toml", "rootless/site.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "vps-nat" / "out" / "vps-nat" / "docker-compose.yml").is_file()
    assert (tmp_path / "rootless" / "out" / "rootless" / "docker-compose.yml").is_file()
    assert not (tmp_path / "out").exists()


def test_a_missing_checkout_is_refused_with_every_missing_context_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    profile = site / "site.toml"
    profile.write_text((ROOT / "profiles" / "webrtc.toml").read_text())
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for component in ("asterisk", "backend", "dialer/api", "dialer/worker", "frontend", "kamailio", "rtpengine", "websockets"):
        assert str(tmp_path / "omnivoip" / "components" / component) in result.stderr, component
    assert f"{profile}: build.source: no Dockerfile in the build contexts " in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is written"
    assert not (site / "site.secrets.toml").exists(), "no secrets are generated for a build that does not go ahead"

    # An explicit checkout elsewhere, relative to the profile, ends up relative to the output folder.
    make_fake_checkout(tmp_path / "src" / "omnivoip")
    profile.write_text(profile.read_text() + '\n[build]\nsource = "../src/omnivoip"\n')
    built = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr
    compose = (tmp_path / "out" / "docker-compose.yml").read_text()
    assert 'context: "../src/omnivoip/components/dialer/api"' in compose

    # Pulling prebuilt images needs no checkout at all.
    profile.write_text(profile.read_text().replace('source = "../src/omnivoip"', 'source = "../nowhere"\nprebuilt = true'))
    pulled = run_cli("build", str(profile), "-o", str(tmp_path / "pulled"))
    assert pulled.returncode == 0, pulled.stderr
    assert "build:" not in (tmp_path / "pulled" / "docker-compose.yml").read_text()


def test_output_is_deterministic_across_environments(tmp_path: Path) -> None:
    """Byte-identical across runs, PYTHONHASHSEED, TZ, locale and umask."""
    profile = tmp_path / "p.toml"
    profile.write_text((ROOT / "profiles" / "call-center-500.toml").read_text())
    outputs = []
    variants = [
        {"PYTHONHASHSEED": "0", "TZ": "UTC", "LC_ALL": "C", "umask": "022"},
        {"PYTHONHASHSEED": "12345", "TZ": "Asia/Kolkata", "LC_ALL": "C.UTF-8", "umask": "077"},
    ]
    for index, variant in enumerate(variants):
        out = tmp_path / f"out{index}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGEN_")}
        env.update({k: v for k, v in variant.items() if k != "umask"})
        command = f"umask {variant['umask']} && exec {sys.executable} -m omnigen build {profile} -o {out}"
        result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        outputs.append({rel: (out / rel).read_bytes() for _, rel in OUTPUTS})
        modes = {rel: stat.S_IMODE((out / rel).stat().st_mode) for _, rel in OUTPUTS}
        assert modes[".env"] == 0o600
        private = {".env", "asterisk/manager.conf", "asterisk/ari.conf"}  # they hold secrets
        assert all(modes[rel] == 0o600 for rel in private), modes
        assert all(mode == 0o644 for rel, mode in modes.items() if rel not in private), modes
    assert outputs[0] == outputs[1]


def _batch_folder(tmp_path: Path, names: tuple[str, ...]) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    make_fake_checkout(tmp_path / "omnivoip")  # build.source = "../omnivoip", beside profiles/
    for name in names:
        text = (ROOT / "profiles" / "lan-office.toml").read_text().replace('name = "lan-office"', f'name = "{name}"')
        assert f'name = "{name}"' in text
        (folder / f"{name}.toml").write_text(text)
    return folder


def test_batch_builds_one_folder_per_profile_and_rebuilds_from_the_same_glob(tmp_path: Path) -> None:
    folder = _batch_folder(tmp_path, ("alpha", "bravo", "charlie"))
    out = tmp_path / "sites"
    command = f"exec {sys.executable} -m omnigen build {folder}/*.toml -o {out}"
    first = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "3 of 3 profiles built" in first.stderr
    for name in ("alpha", "bravo", "charlie"):
        assert (out / name / "docker-compose.yml").is_file()
        assert (folder / f"{name}.secrets.toml").is_file()
    secrets_before = {path.name: path.read_text() for path in folder.glob("*.secrets.toml")}

    # The glob now also matches the sidecars the first build wrote: they are not profiles.
    again = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "3 of 3 profiles built" in again.stderr
    assert "schema_version" not in again.stderr
    assert {path.name: path.read_text() for path in folder.glob("*.secrets.toml")} == secrets_before


def test_a_lone_secrets_sidecar_is_refused_with_its_profile_named(tmp_path: Path) -> None:
    folder = _batch_folder(tmp_path, ("alpha",))
    assert run_cli("build", str(folder / "alpha.toml"), "-o", str(tmp_path / "out")).returncode == 0
    result = run_cli("build", str(folder / "alpha.secrets.toml"), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{folder / 'alpha.secrets.toml'}: this is the secrets sidecar of {folder / 'alpha.toml'}, not a profile" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_bad_profile_in_a_batch_does_not_stop_the_rest(tmp_path: Path) -> None:
    folder = _batch_folder(tmp_path, ("alpha", "charlie"))
    (folder / "bravo.toml").write_text('schema_version = 2\n[project]\nname = "Bad Name"\n')
    out = tmp_path / "sites"
    result = run_cli("build", *(str(folder / f"{name}.toml") for name in ("alpha", "bravo", "charlie")), "-o", str(out))
    assert result.returncode == 2
    assert f"{folder / 'bravo.toml'}:" in result.stderr and "project.name" in result.stderr
    assert "2 of 3 profiles built" in result.stderr
    assert (out / "alpha" / "docker-compose.yml").is_file() and (out / "charlie" / "docker-compose.yml").is_file()
    assert not (out / "bravo").exists()


@pytest.mark.parametrize("output", [None, "sites"])
def test_a_batch_that_would_write_one_folder_twice_is_refused_before_writing(tmp_path: Path, output: str | None) -> None:
    # Without -o each profile builds beside itself, so the clash is two profiles of one folder
    # with one project.name; with -o it is the same name under the batch's root.
    second = "a/copy.toml" if output is None else "b/site.toml"
    for profile in ("a/site.toml", second):
        (tmp_path / profile).parent.mkdir(exist_ok=True)
        (tmp_path / profile).write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    (tmp_path / "c.toml").write_text((ROOT / "profiles" / "lan-office.toml").read_text().replace('name = "lan-office"', 'name = "other"'))
    before = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    options = ["-o", output] if output else []
    result = run_cli("build", "a/site.toml", "c.toml", f"./{second}", *options, cwd=tmp_path)
    assert result.returncode == 2
    assert f"a/site.toml and {second} would all write this folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")) == before, "nothing is written, not even sidecars"


def test_batch_shows_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    import pty

    folder = _batch_folder(tmp_path, ("alpha", "bravo"))
    profiles = [str(folder / "alpha.toml"), str(folder / "bravo.toml")]
    controller, terminal = pty.openpty()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OMNIGEN_")}
    with subprocess.Popen(
        [sys.executable, "-m", "omnigen", "build", *profiles, "-o", str(tmp_path / "tty")], stdout=subprocess.PIPE, stderr=terminal, env=env
    ) as process:
        os.close(terminal)
        stdout, _ = process.communicate(timeout=120)
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not chunk:
                break
            seen += chunk
        os.close(controller)
    assert process.returncode == 0
    assert b"[" + b"#" * 30 + b"] 2/2 bravo.toml" in seen
    assert stdout == b"", "on a terminal the bar replaces the per-profile summaries"

    piped = run_cli("build", *profiles, "-o", str(tmp_path / "piped"))
    assert piped.returncode == 0
    assert "#" not in piped.stderr
    assert piped.stdout.count("written") == 2
