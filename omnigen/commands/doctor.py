from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

HELP = "diagnose the machine Docker runs on: host kind, AppArmor/runc, rootless, userland-proxy, free ports"
EPILOG = """examples:
  omnigen doctor                       probe this machine and suggest host.kind
  omnigen doctor site.toml             also compare with the profile, try binding its ports, and name
                                       exported variables docker compose would take over .env
  omnigen doctor --format json         the probes and the diagnosis as JSON
  omnigen doctor --root /mnt/ct101     read /proc, /etc, /sys of another root (no commands are run)
Needs neither root nor a running Docker daemon; what it cannot find out is reported as unknown, with the reason.
Exit codes: 0 no problems, 1 problems found, 2 bad profile or usage.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", nargs="?", type=Path, help="profile TOML to check against this machine (optional)")
    parser.add_argument("--root", type=Path, default=Path("/"), metavar="DIR", help="filesystem root to read instead of / (default /)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or JSON")


def run(args: argparse.Namespace) -> int:
    from omnigen.errors import EXIT_FINDINGS, EXIT_OK, UsageError
    from omnigen.tools.probes import HostView, diagnose, system_runner

    if not args.root.is_dir():
        raise UsageError(f"--root: {args.root} is not a folder; pass the root of the filesystem to examine")
    profile = layout = None
    if args.profile is not None:
        from omnigen.loading import load

        checked = load(args.profile)
        profile, layout = checked.profile, checked.layout
    own_root = args.root.resolve() == Path("/")
    # Another root is another system: this machine's runc or docker would answer for the wrong one.
    view = HostView(root=args.root, run=system_runner if own_root else None, environ=dict(os.environ), system=platform.system())
    result = diagnose(view, profile, layout)
    if profile is not None:
        from dataclasses import replace

        from omnigen.inputs.tls import source_certificate_warning, utc_now

        if warning := source_certificate_warning(profile, args.profile, utc_now()):
            result = replace(result, notes=(*result.notes, f"certificate: {warning}"))
    if args.format == "json":
        sys.stdout.write(json.dumps(diagnosis_data(result), indent=2) + "\n")
    else:
        sys.stdout.write(diagnosis_text(result))
    return EXIT_OK if result.healthy else EXIT_FINDINGS


def diagnosis_data(result: object) -> dict[str, object]:
    from omnigen.tools.probes import Diagnosis

    assert isinstance(result, Diagnosis)
    return {
        "healthy": result.healthy,
        "suggested_host_kind": result.suggested_kind,
        "reason": result.kind_reason,
        "problems": list(result.problems),
        "notes": list(result.notes),
        "probes": [{"name": probe.name, "status": probe.status, "summary": probe.summary, "facts": dict(probe.facts)} for probe in result.probes],
    }


def diagnosis_text(result: object) -> str:
    from omnigen.tools.probes import Diagnosis

    assert isinstance(result, Diagnosis)
    lines = [probe.render() for probe in result.probes]
    lines.append("")
    kind = f'host.kind = "{result.suggested_kind}"' if result.suggested_kind else "no host kind fits"
    lines.append(f"suggested: {kind} ({result.kind_reason})")
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"PROBLEM: {problem}" for problem in result.problems]
    lines.append("healthy" if result.healthy else f"{len(result.problems)} problem(s) found")
    return "\n".join(lines) + "\n"
