"""The hooks in .pre-commit-hooks.yaml, run by the real pre-commit from a test repo.

pre-commit installs omnigen from this checkout into its own environment (from the
package registry's dependencies), exactly as a user's `pre-commit install` would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def deployment_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("site")
    shutil.copy(ROOT / "profiles" / "lan-office.toml", repo / "omnivoip.toml")
    result = run_cli("build", "omnivoip.toml", cwd=repo)
    assert result.returncode == 0, result.stderr
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=ci@example.com", "-c", "user.name=CI", "add", "-A")
    _git(repo, "-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit", "-qm", "site")
    return repo


def _try_repo(repo: Path, hook: str, home: Path) -> subprocess.CompletedProcess[str]:
    pre_commit = str(Path(sys.executable).with_name("pre-commit"))
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env = {key: value for key, value in env.items() if not key.startswith("OMNIGEN_")}
    return subprocess.run(
        [pre_commit, "try-repo", str(ROOT), hook, "--all-files", "--verbose"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_check_and_lint_hooks_pass_then_check_catches_an_edit(deployment_repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "pre-commit-home"
    passed = _try_repo(deployment_repo, "omnigen-check", home)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    linted = _try_repo(deployment_repo, "omnigen-lint", home)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "omnigen lint" in linted.stdout

    compose = deployment_repo / "out" / "lan-office" / "docker-compose.yml"
    compose.write_text(compose.read_text().replace('"no-new-privileges:true"', '"seccomp:unconfined"'))
    stale = _try_repo(deployment_repo, "omnigen-check", home)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "docker-compose.yml" in stale.stdout
    caught = _try_repo(deployment_repo, "omnigen-lint", home)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "OV106" in caught.stdout
