from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnigen.pipeline import Expected
    from omnigen.plan.plan import Plan
    from omnigen.tools.lint import ComposeRun
    from omnigen.write.outputs import Manifest, Survey

HELP = "exit 0 when an output folder is exactly what build would write, 1 when it is stale or edited"
EPILOG = """examples:
  omnigen check site.toml                 check out/<project.name> beside site.toml
  omnigen check site.toml -o deploy/      check another folder
  omnigen check site.toml --format json   machine-readable list of files and their state

exit codes: 0 up to date, 1 stale/edited/missing files or missing secrets, 2 bad input.
Nothing is written. When the manifest proves the folder current (same profile,
secrets, OMNIGEN_* variables and omnigen code, every file unchanged) the answer
comes without compiling; otherwise check compiles in memory and compares.

pre-commit (.pre-commit-config.yaml):
  - repo: local
    hooks:
      - id: omnigen-check
        name: deployment matches omnivoip.toml
        entry: omnigen check omnivoip.toml -o deploy
        language: system
        pass_filenames: false
"""

# Same rule as profile.Project.name; only used to find the default folder without pydantic.
_PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", type=Path, help="profile TOML")
    parser.add_argument("-o", "--output", type=Path, help="output folder (default: out/<project.name> beside the profile)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def fast_default_out_dir(profile: Path, profile_bytes: bytes, environ: dict[str, str]) -> Path | None:
    """out/<project.name> beside the profile, read with tomllib alone; None when only full validation can tell."""
    import tomllib

    from omnigen.inputs.fingerprint import output_path, overrides_table

    if overrides_table(environ, "project"):
        return None
    try:
        name = tomllib.loads(profile_bytes.decode("utf-8"))["project"]["name"]
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, RecursionError):
        return None
    return output_path(profile, name) if isinstance(name, str) and _PROJECT_NAME.match(name) else None


def fast_check(profile: Path, output: Path | None, environ: dict[str, str]) -> tuple[Path, Manifest] | None:
    """(folder, manifest) when the manifest proves the folder current; None otherwise.

    Imports nothing beyond the standard library and omnigen.write.outputs/fingerprint.
    """
    from omnigen.errors import InputFileError
    from omnigen.inputs.fingerprint import fingerprint, read_optional, sidecar_path, tls_source_bytes
    from omnigen.write.outputs import loose_mode, recorded_files_match

    try:
        profile_bytes = read_optional(profile)
        sidecar = read_optional(sidecar_path(profile), what="secrets sidecar")
    except (OSError, InputFileError):
        return None  # the full path reports it with the usual message
    if profile_bytes is None:
        return None
    if sidecar is not None and loose_mode(sidecar_path(profile)) is not None:
        return None  # the full path reports it with the fix
    out_dir = output if output is not None else fast_default_out_dir(profile, profile_bytes, environ)
    if out_dir is None:
        return None
    tls = tls_source_bytes(profile, profile_bytes, environ)
    if tls is None:
        return None
    manifest = recorded_files_match(out_dir, fingerprint(profile_bytes, sidecar, environ, tls))
    return (out_dir, manifest) if manifest is not None else None


def _warn_about_certificate(out_dir: Path) -> None:
    """The served certificate expires within 30 days (or has): a warning, not a finding; the folder may be current."""
    if not any((out_dir / relative).is_file() for relative in ("certs/fullchain.pem", "acme/live/fullchain.pem")):
        return
    from omnigen.inputs.tls import served_certificate_warning, utc_now

    if warning := served_certificate_warning(out_dir, utc_now()):
        print(f"warning: {warning}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    fast = fast_check(args.profile, args.output, environ)
    if fast is not None:
        from omnigen.write.composefiles import unwritten_compose_files
        from omnigen.write.outputs import unrecorded_files

        out_dir, manifest = fast
        if unwritten_compose_files(out_dir, manifest.files):
            # Compose would merge (or prefer) files omnigen did not write: judge what it would run.
            return _full_check(args, environ)
        _warn_about_certificate(out_dir)
        if args.format == "json":
            files = [{"path": path, "state": "up-to-date", "detail": "matches the manifest"} for path in sorted(manifest.files)]
            _print_json(
                {
                    "out_dir": str(out_dir),
                    "profile": str(args.profile),
                    "up_to_date": True,
                    "fast_path": True,
                    "files": files,
                    "missing_secrets": [],
                    "foreign": unrecorded_files(out_dir, manifest),
                    "compose": [],
                }
            )
        else:
            print(f"{out_dir}: up to date with {args.profile} ({len(manifest.files)} files)")
        return 0
    return _full_check(args, environ)


def _compose_calls(plan: Plan) -> dict[str, int | None]:
    """Bridged calls per compose folder: the RTP rules hold each folder's Asterisk to its share."""
    if plan.cluster is None:
        return {"": plan.rtp.calls}
    return {folder: part.rtp.calls for folder, part in plan.bundles}


def _full_check(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from omnigen.pipeline import expected_outputs
    from omnigen.tools.lint import compose_runs
    from omnigen.write.outputs import loose_mode, survey

    expected = expected_outputs(args.profile, args.output, environ=environ)
    _warn_about_certificate(expected.out_dir)
    state = survey(expected.out_dir, expected.compiled.files, expected.compiled.plan.secret_files)
    sidecar_mode = loose_mode(expected.secrets_path)
    up_to_date = not state.changes and not expected.missing_secrets and sidecar_mode is None
    runs = compose_runs(expected.out_dir, set(expected.compiled.files), _compose_calls(expected.compiled.plan)) if state.exists else []
    compose_ok = not any(run.breaks_policy for run in runs)
    if args.format == "json":
        _print_json(
            {
                "out_dir": str(expected.out_dir),
                "profile": str(args.profile),
                "up_to_date": up_to_date,
                "fast_path": False,
                "files": [{"path": status.path, "state": status.state.value, "detail": status.detail} for status in state.files],
                "missing_secrets": list(expected.missing_secrets),
                "secrets_file": str(expected.secrets_path),
                "secrets_file_mode": None if sidecar_mode is None else f"{sidecar_mode:04o}",
                "foreign": list(state.foreign),
                "compose": [_run_json(expected.out_dir, run) for run in runs],
            }
        )
    else:
        _print_files(args, expected, state, sidecar_mode, up_to_date)
        for run in runs:
            _print_run(args, expected.out_dir, run)
    return 0 if up_to_date and compose_ok else 1


def _print_files(args: argparse.Namespace, expected: Expected, state: Survey, sidecar_mode: int | None, up_to_date: bool) -> None:
    from omnigen.write.outputs import State, loose_mode_detail

    out = expected.out_dir
    changes = state.changes
    if up_to_date:
        print(f"{out}: up to date with {args.profile} ({len(state.files)} files)")
        if state.manifest is None or state.manifest.fingerprint == "" or not state.manifest.complete:
            print(f"  note: the manifest is missing or from an interrupted build; `omnigen build {args.profile} -o {out}` refreshes it")
        return
    if sidecar_mode is not None:
        print(f"{expected.secrets_path}: {loose_mode_detail(expected.secrets_path, sidecar_mode)}")
        if not changes and not expected.missing_secrets:
            return
    if not state.exists:
        print(f"{out}: does not exist; `omnigen build {args.profile} -o {out}` creates it")
        return
    print(f"{out}: not what `omnigen build {args.profile}` would write:")
    width = max((len(status.path) for status in changes), default=0)
    for status in changes:
        print(f"  {status.state.value:<10} {status.path:<{width}}  {status.detail}")
    if expected.missing_secrets:
        print(
            f"  secrets missing from {expected.secrets_path}: {', '.join(expected.missing_secrets)}; "
            "the folder cannot match until `omnigen build` generates them (check never writes secrets)"
        )
    if state.foreign:
        print(f"  not written by omnigen (ignored): {', '.join(state.foreign)}")
    edited = any(status.state is State.EDITED for status in changes)
    advice = f"see `omnigen diff {args.profile} -o {out}`; update with `omnigen build {args.profile} -o {out}`"
    if edited:
        advice += " (edited files: move the change into the profile, or add --force to overwrite them keeping a .bak)"
    print(f"  {advice}")


def _print_run(args: argparse.Namespace, out_dir: Path, run: ComposeRun) -> None:
    from omnigen.write.composefiles import COMPOSE_FILE_NAMES

    folder = run.folder
    merged_in = [name for name in run.reads if name in run.unwritten]
    if not run.breaks_policy:
        print(f"{folder}: Compose also reads {', '.join(merged_in)} (not written by omnigen); the merged configuration keeps to the policy")
        for finding in run.findings:
            print("  " + finding.render().replace("\n", "\n  "))
        return
    for name in run.replaced:
        winner = next((read for read in run.reads if read in COMPOSE_FILE_NAMES), None)
        if winner is not None and name in COMPOSE_FILE_NAMES:
            print(
                f"{folder}: Compose would not run omnigen's {name}: {winner} (not written by omnigen) replaces it, "
                f"as Compose reads only the first of {', '.join(COMPOSE_FILE_NAMES)} it finds; remove or rename {folder / winner} "
                "(site additions belong in docker-compose.override.yml, which Compose merges into omnigen's file)"
            )
        else:
            print(f"{folder}: Compose would not read omnigen's {name} (it reads {', '.join(run.reads)}); remove or rename {', '.join(run.unwritten)}")
    if run.problem is not None:
        print(f"{folder}: the configuration Compose would run there cannot be loaded: {run.problem}")
    if run.errors:
        print(f"{folder}: Compose merges {', '.join(merged_in) or ', '.join(run.reads)} (not written by omnigen), and the result breaks the policy:")
    elif run.findings:
        print(f"{folder}: what Compose would run there ({', '.join(run.reads)}):")
    for finding in run.findings:
        print("  " + finding.render().replace("\n", "\n  "))
    if run.errors:
        print(
            f"  move the change into {args.profile} and rebuild, or keep the override within the policy "
            f"(`omnigen lint {folder}` shows the same; disable comments in files omnigen did not write do not count here)"
        )


def _run_json(out_dir: Path, run: ComposeRun) -> dict[str, Any]:
    return {
        "folder": str(run.folder),
        "reads": list(run.reads),
        "not_written_by_omnigen": list(run.unwritten),
        "replaced": list(run.replaced),
        "breaks_policy": run.breaks_policy,
        "problem": run.problem,
        "findings": [
            {"file": finding.file, "line": finding.line, "severity": finding.severity, "rule": finding.rule_id, "message": finding.message}
            for finding in run.findings
        ],
    }


def _print_json(data: dict[str, Any]) -> None:
    import json

    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
