"""The README's commands, run as written (a newcomer's path).

Each test takes a shell block from README.md by its section and runs it with `sh -e`
in a scratch folder, with this checkout's `omnigen` and `copier` first on PATH (as
`pipx install` would put them). What cannot run here is named where it is replaced:
`docker compose up -d` needs a Docker engine (the e2e tier, `make e2e`, brings the
same build up), and `pipx install` needs pipx and the network (done by hand, on a
fresh machine, for the release notes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from omnigen import __version__
from omnigen.loading import load_profile
from tests.conftest import ROOT, compose_binary, make_fake_checkout
from tests.tools.test_scaffold import GIT_ENV, git, template_copy

README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def shell_blocks(heading: str) -> list[str]:
    """The ```sh blocks of one README section (up to the next heading of any level)."""
    start = README.index(f"\n{heading}\n")
    following = re.search(r"\n#{1,6} ", README[start + len(heading) + 2 :])
    section = README[start : start + len(heading) + 2 + following.start()] if following else README[start:]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def run_block(script: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OMNIGEN_", "GIT_", "COMPOSE_", "DOCKER_"))}
    env.update(GIT_ENV)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    return subprocess.run(["sh", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_quick_start_runs_as_written_up_to_compose(tmp_path: Path) -> None:
    make_fake_checkout(tmp_path / "omnivoip")  # the OmniVoIP checkout beside the site (README: build.source)
    (block,) = shell_blocks("## Quick start")
    up = "cd out/acme && docker compose up -d\n"
    assert block.endswith(up)
    # Everything as written; the last step's `up -d` needs an engine: the real Compose binary
    # loads and validates the same folder the way `up` would before starting anything.
    script = block.removesuffix(up) + f"cd out/acme && '{compose_binary()}' config --quiet\n"
    result = run_block(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "acme"
    assert (site / "out" / "acme" / "docker-compose.yml").is_file()
    assert (site / "omnivoip.secrets.toml").stat().st_mode & 0o777 == 0o600
    assert "Published ports" in result.stdout  # omnigen explain
    assert str(load_profile(site / "omnivoip.toml", {}).network.public_ip) in README.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_install_blocks_name_the_wheel_make_dist_builds(tmp_path: Path) -> None:
    """`make dist` as written; the wheel the README names works outside the checkout, templates and profiles inside it."""
    first, second = shell_blocks("## Install the `omnigen` command")
    assert first.splitlines()[0].startswith("pipx install .")
    assert run_block("omnigen --version\n", tmp_path).stdout.strip() == f"omnigen {__version__}"
    make_dist, pipx_install = second.splitlines()
    wheel_name = f"omnigen-{__version__}-py3-none-any.whl"
    assert make_dist.startswith("make dist") and f"dist/{wheel_name}" in make_dist
    assert pipx_install.startswith(f"pipx install dist/{wheel_name}")

    result = run_block(make_dist.split("#")[0], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = ROOT / "dist" / wheel_name
    names = zipfile.ZipFile(wheel).namelist()
    assert "omnigen/templates/docker-compose.yml.j2" in names and "omnigen/profiles/lan-office.toml" in names
    assert not [name for name in names if name.endswith(".secrets.toml") or "/out/" in name], "credentials must never ship"

    # Installed alone (its dependencies are this venv's), away from the checkout: the packaged demo builds.
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True)
    code = f"import sys; sys.path.insert(0, {str(target)!r}); import omnigen.cli as cli; assert cli.__file__.startswith({str(target)!r}); sys.exit(cli.main(['build']))"
    built = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out" / "lan-office" / "docker-compose.yml").is_file()


def test_copier_block_runs_as_written_from_a_checkout(tmp_path: Path) -> None:
    make_fake_checkout(tmp_path / "omnivoip")  # the OmniVoIP checkout beside the site (README: build.source)
    block = shell_blocks("## A deployment repository per site: scaffolding with Copier")[0]
    install, copy, build = block.splitlines()
    assert install == "pipx install copier==9.19.1"
    assert shutil.which("copier", path=str(BIN)), "copier is a test dependency, pinned to the same version"
    checkout = template_copy(tmp_path / "path" / "to" / "omnigen")
    git(checkout, "init", "--quiet")
    git(checkout, "add", "--all")
    git(checkout, "commit", "--quiet", "-m", "checkout")
    result = run_block(f"{copy}\n{build}\n", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "acme-site"
    profile = load_profile(site / "omnivoip.toml", {})
    assert (profile.project.name, str(profile.network.public_ip)) == ("acme-site", "203.0.113.10")
    assert (site / "out" / "acme-site" / "docker-compose.yml").is_file()


def test_import_block_runs_as_written(tmp_path: Path) -> None:
    make_fake_checkout(tmp_path / "omnivoip")  # the OmniVoIP checkout beside the site (README: build.source)
    (block,) = shell_blocks("Moving an existing hand-written deployment onto omnigen:")
    shutil.copytree(ROOT / "tests" / "reference" / "omnivoip-v2", tmp_path / "omnivoip-v2")
    site = tmp_path / "site"
    site.mkdir()
    result = run_block(block, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "out" / "omnivoip" / "docker-compose.yml").is_file()
