from __future__ import annotations

import argparse
import sys

HELP = "print a shell completion script (bash, zsh or fish)"
EPILOG = """examples:
  omnigen completion bash > /etc/bash_completion.d/omnigen
  omnigen completion zsh > "${fpath[1]}/_omnigen"
  omnigen completion fish > ~/.config/fish/completions/omnigen.fish
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete for")


def run(args: argparse.Namespace) -> int:
    from omnigen.cli import make_parser
    from omnigen.completion import SHELLS

    sys.stdout.write(SHELLS[args.shell](make_parser()))
    return 0
