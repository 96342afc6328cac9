"""render: the Jinja bytecode cache runs only code the current user wrote."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import jinja2
import pytest
from jinja2.bccache import Bucket

from omnigen import __version__
from omnigen.render import templates_dir
from tests.conftest import ROOT, run_cli

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making files owned by another user needs root")


def plant(cache: Path, marker: Path) -> Path:
    """A cache file for env.j2 whose code writes `marker`: what an attacker would leave."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())))
    assert env.loader is not None
    source, filename, _ = env.loader.get_source(env, "env.j2")
    cache_api = jinja2.BytecodeCache()
    bucket = Bucket(env, cache_api.get_cache_key("env.j2", filename), cache_api.get_source_checksum(source))
    bucket.code = compile(f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(99)", "planted", "exec")
    path = cache / f"__jinja2_{bucket.key}.cache"
    with path.open("wb") as handle:
        bucket.write_bytecode(handle)
    return path


def build_with_cache(tmp_path: Path, cache_home: Path) -> int:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    return run_cli("build", "-q", str(profile), "-o", str(tmp_path / "out"), env={"XDG_CACHE_HOME": str(cache_home)}).returncode


def cache_folder(cache_home: Path) -> Path:
    return cache_home / "omnigen" / f"jinja-{__version__}"


def test_the_cache_is_private_and_used(tmp_path: Path) -> None:
    """Our own 0700 folder is used: a cache file we wrote there runs (so the refusals below are not vacuous)."""
    home = tmp_path / "cache"
    assert build_with_cache(tmp_path, home) == 0
    folder = cache_folder(home)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.geteuid()
    files = list(folder.iterdir())
    assert files and all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    marker = tmp_path / "ran"
    plant(folder, marker)
    assert build_with_cache(tmp_path, home) != 0
    assert marker.exists()


@needs_root
def test_a_folder_another_user_owns_is_not_used(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    home = tmp_path / "cache"
    folder = cache_folder(home)
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    planted = plant(folder, marker)
    for path in (folder, folder.parent, planted):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    folder.chmod(0o777)
    assert build_with_cache(tmp_path, home) == 0
    assert not marker.exists(), "the build ran code from a cache folder another user controls"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777, "not ours: left alone"


@needs_root
def test_a_loosened_folder_of_ours_is_made_private_and_planted_files_are_ignored(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    home = tmp_path / "cache"
    folder = cache_folder(home)
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    marker = tmp_path / "ran"
    os.chown(plant(folder, marker), nobody.pw_uid, nobody.pw_gid)
    assert build_with_cache(tmp_path, home) == 0
    assert not marker.exists(), "the build ran a cache file another user wrote"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_symlinked_cache_folder_is_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    marker = tmp_path / "ran"
    plant(elsewhere, marker)
    cache_folder(home).parent.mkdir(parents=True)
    cache_folder(home).symlink_to(elsewhere)
    assert build_with_cache(tmp_path, home) == 0
    assert not marker.exists()
