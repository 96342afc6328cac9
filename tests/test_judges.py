"""Third-party judges on every example's output: yamllint and the compose-spec JSON Schema.

(The real Compose binary judges in test_compose_real.py; dclint in the lint tests.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, compile_example, write_files


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folders = []
    for profile in EXAMPLES:
        folder = tmp_path_factory.mktemp(profile.stem)
        write_files(folder, compile_example(profile).files)
        folders.append(folder)
    return folders


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_yamllint_default_rules_pass(outputs: list[Path]) -> None:
    """yamllint's default rule set, unmodified: document start, line length 80, truthy, indentation."""
    files = [str(folder / "docker-compose.yml") for folder in outputs]
    result = subprocess.run([_tool("yamllint"), "--strict", "-d", "default", *files], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_schema_accepts_every_output(outputs: list[Path]) -> None:
    files = [str(folder / "docker-compose.yml") for folder in outputs]
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
