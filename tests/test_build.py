"""omnigen build: every example profile, every output file, pinned by snapshots."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from omnigen.plan import OUTPUTS
from tests.conftest import EXAMPLES, ROOT, compile_example, run_cli, snapshot_suffix


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
        assert all(mode == 0o644 for rel, mode in modes.items() if rel != ".env"), modes
    assert outputs[0] == outputs[1]
