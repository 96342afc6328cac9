from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "upgrade profiles written for an older omnigen to the current schema_version, in place"
EPILOG = """Comments, key order and layout are kept; renamed keys stay on their line and a
removed key is left behind as a comment that says why. After migrating, the
profile is validated as `omnigen build` would.

examples:
  omnigen migrate omnivoip.toml            upgrade in place and report every change
  omnigen migrate --check omnivoip.toml    CI/pre-commit: exit 1 if a migration is needed, write nothing
  omnigen migrate profiles/*.toml          several profiles at once

exit codes: 0 up to date or migrated, 1 migration needed (--check),
2 unreadable profile, a newer schema_version than this omnigen knows, or a
migrated profile that still does not validate.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profiles", nargs="+", type=Path, metavar="PROFILE", help="profile TOML files to upgrade")
    parser.add_argument("--check", action="store_true", help="only report: exit 1 when any profile needs migrating; never write")


def run(args: argparse.Namespace) -> int:
    from omnigen.errors import EXIT_FINDINGS, EXIT_OK, OmnigenError
    from omnigen.inputs.profile import profile_arguments

    worst_error = EXIT_OK
    needed = False
    for path in profile_arguments(args.profiles):
        try:
            needed |= _one(path, check=args.check)
        except OmnigenError as error:
            print(error.render(), file=sys.stderr)
            worst_error = max(worst_error, error.exit_code)
    # A bad profile outranks "migration needed", as in every other command.
    return worst_error or (EXIT_FINDINGS if needed else EXIT_OK)


def _one(path: Path, *, check: bool) -> bool:
    """Migrate (or with check, inspect) one profile; True when --check found it needs migrating."""
    import os
    import stat

    from omnigen.errors import InputIssue, ProfileError
    from omnigen.inputs.migrations import migrate_text
    from omnigen.inputs.profile import read_toml
    from omnigen.loading import validate
    from omnigen.write.outputs import write_file_atomic

    _data, text = read_toml(path)  # located errors for missing, unreadable, non-UTF-8 or malformed files
    result = migrate_text(text, str(path))
    if not result.needed:
        print(f"{path}: schema_version {result.target} is current; nothing to do")
        return False
    if check:
        print(f"{path}: schema_version {result.source} needs migrating to {result.target}; run `omnigen migrate {path}`")
        return True

    mode = stat.S_IMODE(os.stat(path).st_mode)
    write_file_atomic(path, result.text, mode)
    print(f"{path}: migrated schema_version {result.source} -> {result.target}")
    for step, changes in result.changes:
        print(f"  {step.source} -> {step.target}: {step.summary}")
        for change in changes:
            print(f"    {change.key}: {change.message}")

    from omnigen.inputs.tomlpos import parse_toml

    try:
        checked = validate(parse_toml(result.text, str(path)), file=str(path), text=result.text, env={})
    except ProfileError as error:
        raise ProfileError(
            [InputIssue(str(path), "", "migrated, but the profile does not validate yet", hint="fix the problems below, then `omnigen build`"), *error.issues]
        ) from None
    rtp = checked.layout.first_rtp
    print(f"  valid; {rtp.calls} calls -> RTP {rtp.start}-{rtp.end} ({rtp.size} ports). Next: omnigen build {path}")
    return False
