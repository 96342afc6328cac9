from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omnigen.formats.redact import Redactor
    from omnigen.write.outputs import FileStatus

HELP = "show what build would change in an output folder, as a unified diff with every secret masked"
EPILOG = """examples:
  omnigen diff site.toml                  compare with out/<project.name> beside site.toml
  omnigen diff site.toml -o deploy/       compare with another folder
  omnigen diff site.toml -o deploy/ | less -R

exit codes: 0 no changes, 1 changes, 2 bad input. Nothing is written.
Every secret (and its URL-encoded and escaped forms, and any value a .env on
disk assigns to a secret key) is printed as ********. Secrets the sidecar does
not have yet are shown masked too: build would generate them.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", type=Path, help="profile TOML")
    parser.add_argument("-o", "--output", type=Path, help="output folder (default: out/<project.name> beside the profile)")
    parser.add_argument("-U", "--unified", type=int, default=3, metavar="N", help="lines of context (default: 3)")


def run(args: argparse.Namespace) -> int:
    from omnigen.errors import UsageError
    from omnigen.formats.redact import Redactor, env_values
    from omnigen.inputs.profile import SECRET_NAMES
    from omnigen.pipeline import expected_outputs
    from omnigen.write.outputs import loose_mode, survey

    if args.unified < 0:
        raise UsageError(f"--unified: must be 0 or more (got {args.unified})")
    expected = expected_outputs(args.profile, args.output, environ=dict(os.environ))
    compiled = expected.compiled
    state = survey(expected.out_dir, compiled.files, compiled.plan.secret_files)
    secret_keys = [var.key for section in compiled.plan.env for var in section.variables if var.secret]
    # The secret settings of the Asterisk configs that are secret files (manager.conf, ari.conf).
    secret_keys += ["secret", "password"]
    values = list(compiled.plan.secret_values)
    values += [value for name in SECRET_NAMES if isinstance(value := getattr(compiled.secrets, name, None), str)]
    for status in state.files:
        if status.secret and status.current is not None:
            values += env_values(status.current.decode("utf-8", "replace"), secret_keys)
        # A private key (certs/privkey.pem): every line between its armour lines, expected and on disk.
        for raw in (status.expected, status.current):
            text = raw.decode("ascii", "replace") if raw is not None else ""
            if status.secret and "PRIVATE KEY-----" in text:
                values += [line for line in text.splitlines() if line.strip() and not line.startswith("-----")]
    redactor = Redactor.create(values, secret_keys)

    out = sys.stdout
    for status in state.changes:
        for line in file_diff(expected.out_dir, status, redactor, args.unified):
            out.write(line)
    if expected.missing_secrets:
        print(
            f"note: {expected.secrets_path} lacks {', '.join(expected.missing_secrets)}; "
            "build would generate them (shown masked)",
            file=sys.stderr,
        )
    sidecar_mode = loose_mode(expected.secrets_path)
    if sidecar_mode is not None:
        print(f"note: {expected.secrets_path} has mode {sidecar_mode:04o} (group or others can read it); build sets 0600", file=sys.stderr)
    return 1 if state.changes or expected.missing_secrets or sidecar_mode is not None else 0


def _lines(data: bytes | None) -> list[str]:
    """Lines as Compose, Asterisk and git see them: split at LF only (not at U+2028 or \\x0c like splitlines)."""
    import re

    return re.findall(r"[^\n]*\n|[^\n]+$", data.decode("utf-8", "replace")) if data is not None else []


def file_diff(out_dir: Path, status: FileStatus, redactor: Redactor, context: int = 3) -> Iterator[str]:
    """git-style unified diff of one file, masked line by line."""
    import difflib

    from omnigen.write.outputs import SECRET_MODE, State, mode_allows_others

    path = (out_dir / status.path).as_posix()
    yield f"diff omnigen {path}  ({status.state.value}: {status.detail})\n"
    if status.secret and status.mode is not None and mode_allows_others(status.mode) and status.expected is not None:
        yield f"old mode 100{status.mode:o}\nnew mode 100{SECRET_MODE:o}\n"
    if status.state is State.MODE or status.oversize:
        return
    old_name = "/dev/null" if status.current is None else f"a/{path}"
    new_name = "/dev/null" if status.expected is None else f"b/{path}"
    diff = difflib.unified_diff(_lines(status.current), _lines(status.expected), old_name, new_name, n=context)
    for index, line in enumerate(diff):
        # The first two lines are the ---/+++ headers and hunk headers start with @@;
        # every other line is content (" ", "+" or "-" + text) and is masked, even
        # one that looks like a header ("--- x" is the removed line "-- x").
        if index < 2 or line.startswith("@@"):
            yield line if line.endswith("\n") else line + "\n"
            continue
        body = redactor.line(line[1:], secret_file=status.secret)
        yield line[0] + body if body.endswith("\n") else line[0] + body + "\n\\ No newline at end of file\n"
