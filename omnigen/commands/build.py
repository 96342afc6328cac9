from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "compile a profile into docker-compose.yml, .env and the service configs"
EPILOG = """examples:
  omnigen build                          build the packaged default profile into out/<name>
  omnigen build omnivoip.toml            build a profile into out/<project.name>
  omnigen build site.toml -o deploy/     choose the output folder
  OMNIGEN_CAPACITY__CONCURRENT_CALLS=300 omnigen build site.toml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", nargs="?", type=Path, help="profile TOML (default: the packaged lan-office profile)")
    parser.add_argument("-o", "--output", type=Path, help="output folder (default: out/<project.name>)")
    parser.add_argument("--force", action="store_true", help="overwrite files edited since the last build, keeping a .bak of each")


def run(args: argparse.Namespace) -> int:
    from omnigen.pipeline import build

    result = build(args.profile, args.output, force=args.force)
    plan = result.compiled.plan
    if result.compiled.generated:
        print(f"generated secrets {', '.join(result.compiled.generated)} in {result.secrets_path} (mode 0600)", file=sys.stderr)
    written = len(result.report.written)
    print(
        f"{result.out_dir}: {written} written, {len(result.report.unchanged)} unchanged; "
        f"{plan.rtp.calls} calls, RTP {plan.rtp.start}-{plan.rtp.end} ({plan.rtp.size} ports)"
    )
    for backup in result.report.backups:
        print(f"  kept your edited version as {result.out_dir / backup}")
    if result.report.foreign:
        print(f"  left alone (not written by omnigen): {', '.join(result.report.foreign)}")
    return 0
