from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HELP = "show what a profile will publish and cost before you deploy it"
EPILOG = """examples:
  omnigen explain site.toml                 tables: media ports, published ports, docker-proxy cost, bandwidth, warnings
  omnigen explain site.toml --format json   the same as JSON, for scripts
  omnigen explain site.toml --opus-kbps 24  bandwidth with a lower Opus bitrate
  omnigen explain site.toml | less          plain text when piped; NO_COLOR=1 turns colour off on a terminal
  omnigen explain cluster.toml              with [[hosts]]: placement, each host's ports and docker-proxy cost
Nothing is written and the secrets sidecar is not read. Exit 2 when the profile is invalid or over its
host kind's port budget (the message says by how much and what to change).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", type=Path, help="profile TOML")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text tables (default) or JSON")
    parser.add_argument(
        "--opus-kbps",
        type=float,
        default=None,
        metavar="KBPS",
        help="Opus payload bitrate for the bandwidth table (default 32; 16-40 is typical for voice)",
    )


def run(args: argparse.Namespace) -> int:
    from omnigen.errors import UsageError
    from omnigen.loading import load
    from omnigen.plan.capacity import DEFAULT_OPUS_KBPS
    from omnigen.plan.make import make_topology
    from omnigen.tools.explain import explain_data, explain_tables, render_plain

    opus = DEFAULT_OPUS_KBPS if args.opus_kbps is None else args.opus_kbps
    if not 6 <= opus <= 510:
        raise UsageError(f"--opus-kbps: Opus encodes 6-510 kbit/s (got {opus:g}); pass a bitrate in that range")
    checked = load(args.profile)
    profile = checked.profile
    # explain prints no secret: the plan without them, so the sidecar is neither read nor created.
    plan = make_topology(profile, checked.layout)
    # A multi-host plan carries each host's layout; a single host has one.
    data = explain_data(profile, plan, checked.layout.ports, opus)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return 0
    tables = explain_tables(data)
    if not sys.stdout.isatty():
        sys.stdout.write(render_plain(tables, _plain_width()))
        return 0
    from rich.console import Console

    from omnigen.tools.explain import print_rich

    # rich also reads NO_COLOR itself; passing it makes the rule explicit.
    print_rich(tables, Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False))
    return 0


def _plain_width() -> int:
    """COLUMNS when set (as for any tool), else 100: wide enough for the tables, narrow enough for logs."""
    from omnigen.tools.explain import PLAIN_WIDTH

    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) >= 40 else PLAIN_WIDTH
