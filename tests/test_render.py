"""render: the Jinja bytecode cache runs only code the current user wrote; literal blocks read back as printed."""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.bccache import Bucket

from omnigen import __version__
from omnigen.formats import yamlpos
from omnigen.render import templates_dir, yaml_literal_block
from tests.conftest import ROOT, run_cli, run_compose

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


# --- yaml_literal_block: a command of several lines (redis's script) printed as a literal block ---

_block_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\ufeff") | st.sampled_from("\n\t $#:-|>'\""),
    min_size=1,
).filter(lambda text: text[0] not in " \n\t")


@given(_block_text)
def test_a_literal_block_reads_back_as_the_value_it_prints(text: str) -> None:
    document = "command:\n  - " + yaml_literal_block(text, 4) + "\nafter: 1\n"
    loaded = yamlpos.load(document).data
    assert loaded == {"command": [text.replace("$", "$$")], "after": 1}  # Compose then reads $$ as $


@pytest.mark.parametrize("text", ["", " indented", "\nleading", "\ttab", "bell\x07", "nel\x85", "sep\u2028"])
def test_a_literal_block_refuses_what_it_cannot_carry(text: str) -> None:
    with pytest.raises(ValueError, match="refusing to print"):
        yaml_literal_block(text, 8)


def test_redis_s_script_prints_as_a_plain_literal_block() -> None:
    assert yaml_literal_block("set -eu\necho ${A:-}\n", 8) == "|\n        set -eu\n        echo $${A:-}"
    assert yaml_literal_block("a\n\nb", 2) == "|-\n  a\n\n  b"
    assert yaml_literal_block("a\n\n", 2) == "|+\n  a\n"


@pytest.mark.parametrize("text", ["set -eu\nexec x\n", "a\n   \nb", "trailing  \n\tindented\n\n", "no newline at the end", "$HOME ${A:-b}\n#not a comment\n"])
def test_the_real_compose_reads_a_literal_block_as_the_value(text: str, tmp_path: Path) -> None:
    compose = f"services:\n  probe:\n    image: \"busybox\"\n    command:\n      - {yaml_literal_block(text, 8)}\n    user: \"1\"\n"
    (tmp_path / "docker-compose.yml").write_text(compose)
    (tmp_path / ".env").write_text("")
    result = run_compose(tmp_path, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["services"]["probe"]["command"] == [text.replace("$", "$$")]  # `config` re-escapes `$`
