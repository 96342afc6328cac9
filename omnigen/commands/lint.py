from __future__ import annotations

import argparse
import sys

HELP = "judge a Docker Compose deployment (hand-written or generated) with omnigen's rule set"
EPILOG = """examples:
  omnigen lint                                  the compose files in the current folder (+ override, .env, mounted configs)
  omnigen lint prod-env/                        a deployment folder
  omnigen lint prod-env/docker-compose.yml --calls 50
  omnigen lint . --format json > lint.json
  omnigen lint . --strict --disable OV113,image-tag
  omnigen lint --list-rules

Disable in a file: `# omnigen: disable=OV109 -- reason` on the line (or on a service's key line
for the whole service), `# omnigen: disable-next-line=OV109`, `# omnigen: disable-file=OV208`
(`;` instead of `#` in Asterisk configs). Every disable is listed in the summary. See docs/rules.md.
Exit codes: 0 clean (warnings allowed), 1 errors (or warnings with --strict), 2 input unreadable.
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of calls (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 call (got {value})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["."], metavar="PATH", help="compose file or deployment folder (default: .)")
    parser.add_argument("--calls", type=_positive, metavar="N", help="bridged calls the deployment must carry; checks the RTP ranges hold them")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument(
        "--disable", action="append", default=[], metavar="RULE", help="rule id or name to skip for this run (repeatable, comma-separated)"
    )
    parser.add_argument("--env-file", metavar="FILE", help="interpolate from this file instead of the .env next to the compose file")
    parser.add_argument("--list-rules", action="store_true", help="print every rule with its severity and rationale, then exit")


def run(args: argparse.Namespace) -> int:
    from omnigen.errors import UsageError
    from omnigen.tools.lint import lint, render_json, render_text, rules_table
    from omnigen.verify.rules import resolve_rule

    if args.list_rules:
        sys.stdout.write(rules_table())
        return 0
    disabled: list[str] = []
    for entry in args.disable:
        for name in filter(None, (part.strip() for part in entry.split(","))):
            rule_id = resolve_rule(name)
            if rule_id is None:
                raise UsageError(f"--disable {name}: no such rule; `omnigen lint --list-rules` lists them")
            disabled.append(rule_id)
    result = lint(args.paths, calls=args.calls, disabled=disabled, env_file=args.env_file)
    sys.stdout.write(render_json(result) if args.format == "json" else render_text(result))
    return result.exit_code(strict=args.strict)
