"""The CLI shell: help for every command, exit codes, shell completion."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from omnigen.cli import COMMANDS, main
from tests.conftest import missing_tool, run_cli


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout


def test_usage_error_exits_2() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("omnigen ")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_parse_and_list_every_command(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for command in COMMANDS:
        assert command in script
    binary = shutil.which(shell)
    if binary is None:
        missing_tool(f"{shell} is not installed; .ci/install-shells.sh installs it (`make test` runs it as root)")
    result = subprocess.run([binary, "-n"], input=script, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
