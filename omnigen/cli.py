"""The command line: a thin layer that parses arguments and maps errors to exit codes.

Each command lives in omnigen/commands/<name>.py with `HELP`, `EPILOG`,
`add_arguments(parser)` and `run(args) -> int`. Command modules import their
heavy dependencies inside `run`, so `omnigen check` never pays for pydantic or
Jinja when it does not need them.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import sys
from collections.abc import Sequence
from types import ModuleType

from omnigen import __version__
from omnigen.errors import EXIT_INTERNAL, OmnigenError

COMMANDS: tuple[str, ...] = ("build", "schema", "completion", "migrate", "check", "diff", "import", "lint", "explain", "doctor")


def _load(name: str) -> ModuleType:
    module = name.replace("-", "_")
    # A command named after a Python keyword lives in <name>_.py (e.g. `import` -> import_.py).
    return importlib.import_module(f"omnigen.commands.{module}{'_' if keyword.iskeyword(module) else ''}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnigen",
        description="Compile an OmniVoIP profile (omnivoip.toml) into a consistent Docker Compose deployment.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 ok, 1 findings (check/lint), 2 bad input or usage, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"omnigen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _load(name)
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except OmnigenError as error:
        print(error.render(), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:
        if args.debug:
            raise
        print(f"internal error: {type(error).__name__}: {error}\nrerun with --debug for a traceback and report it.", file=sys.stderr)
        return EXIT_INTERNAL
