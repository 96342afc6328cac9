from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "print the profile's JSON Schema (for editors, taplo and CI) or its reference page"
EPILOG = """examples:
  omnigen schema                          print the schema
  omnigen schema -o schema/omnivoip.schema.json
  omnigen schema --format markdown -o docs/profile.md   every key: type, default, meaning, example
Add `#:schema ./omnivoip.schema.json` as the first line of a profile for completion in editors.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, help="write the schema to this file instead of stdout")
    parser.add_argument(
        "--format", choices=("json", "markdown"), default="json", help="json: the JSON Schema (default); markdown: the profile reference (docs/profile.md)"
    )


def run(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        from omnigen.tools.reference import profile_reference

        text = profile_reference()
    else:
        from omnigen.inputs.schema import schema_text

        text = schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from omnigen.write.outputs import write_file_atomic

    write_file_atomic(args.output, text, 0o644)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
