from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omnigen.loading import Loaded

HELP = "compile profiles into docker-compose.yml, .env and the service configs"
EPILOG = """examples:
  omnigen build                          build the packaged default profile into ./out/lan-office
  omnigen build omnivoip.toml            build a profile into out/<project.name> beside it
  omnigen build site.toml -o deploy/     choose the output folder
  omnigen build profiles/*.toml          batch: profiles/out/<project.name> for each
  omnigen build a.toml b.toml -o sites/  batch into sites/<project.name>
  OMNIGEN_CAPACITY__CONCURRENT_CALLS=300 omnigen build site.toml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profiles", nargs="*", type=Path, metavar="PROFILE", help="profile TOML files (default: the packaged lan-office profile)")
    parser.add_argument("-o", "--output", type=Path, help="output folder (default: out/<project.name> beside the profile, like its secrets sidecar); with several profiles, the parent of one folder per profile")
    parser.add_argument("--force", action="store_true", help="overwrite files edited since the last build, keeping a .bak of each")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _summary(result: object) -> str:
    from omnigen.pipeline import BuildResult

    assert isinstance(result, BuildResult)
    plan = result.compiled.plan
    media = f"{plan.rtp.calls} calls, RTP {plan.rtp.start}-{plan.rtp.end} ({plan.rtp.size} ports)"
    if plan.cluster is not None:  # multi-host: each voice host has its own share and range
        shares = "; ".join(f"{voice.host} {voice.calls} calls, RTP {voice.rtp.start}-{voice.rtp.end}" for voice in plan.cluster.voice)
        media = f"{len(plan.cluster.hosts)} hosts (stack.yml, hosts/<name>/); {shares}"
    text = f"{result.out_dir}: {len(result.report.written)} written, {len(result.report.unchanged)} unchanged; {media}"
    for backup in result.report.backups:
        text += f"\n  kept your edited version as {result.out_dir / backup}"
    if result.report.removed:
        text += f"\n  removed (written by an earlier build, no longer produced): {', '.join(result.report.removed)}"
    made_private = list(result.report.modes_fixed) + ([str(result.secrets_path)] if result.sidecar_made_private else [])
    if made_private:
        text += f"\n  made private again (mode 0600; group or others could read them): {', '.join(made_private)}"
    if result.report.foreign:
        text += f"\n  left alone (not written by omnigen): {', '.join(result.report.foreign)}"
    if result.compiled.generated:
        text += f"\n  generated secrets {', '.join(result.compiled.generated)} in {result.secrets_path} (mode 0600)"
    return text


def _print_warnings(result: object) -> None:
    """Host-kind and network-mode caveats (omnigen/plan/caveats.py): on stderr, even with --quiet."""
    from omnigen.pipeline import BuildResult

    assert isinstance(result, BuildResult)
    for warning in result.compiled.plan.warnings:
        print(f"{result.out_dir}: {warning.render()}", file=sys.stderr)
    if result.handover_problem:
        print(f"{result.out_dir}: warning: {result.handover_problem}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from omnigen.inputs.profile import profile_arguments
    from omnigen.pipeline import build

    args.profiles = profile_arguments(args.profiles)
    if len(args.profiles) <= 1:
        profile = args.profiles[0] if args.profiles else None
        result = build(profile, args.output, force=args.force, on_wait=_waiting(profile, args.quiet))
        if not args.quiet:
            print(_summary(result))
        _print_warnings(result)
        return 0
    return _batch(args)


def _load_all(profiles: list[Path], out_root: Path | None) -> tuple[dict[Path, Loaded], list[str]]:
    """Every profile that loads, and the folders two of them would write: the second would
    silently replace the first's files (and leave them out of step with the first's sidecar)."""
    import os

    from omnigen.errors import OmnigenError
    from omnigen.loading import load
    from omnigen.pipeline import output_dir

    loaded: dict[Path, Loaded] = {}
    writers: dict[str, list[Path]] = {}
    shown: dict[str, Path] = {}
    for path in profiles:
        try:
            checked = load(path, dict(os.environ))
        except OmnigenError:
            continue  # reported when the batch builds it
        loaded[path] = checked
        folder = output_dir(path, checked.profile, None, out_root)
        key = os.path.realpath(folder)
        writers.setdefault(key, []).append(path)
        shown.setdefault(key, folder)
    clashes = [
        f"{shown[key]}: {' and '.join(map(str, paths))} would all write this folder; "
        "give each profile its own project.name, or build them one at a time with -o"
        for key, paths in writers.items()
        if len(paths) > 1
    ]
    return loaded, clashes


def _batch(args: argparse.Namespace) -> int:
    """Many profiles in one process: templates compile once, and one bad profile does not stop the rest."""
    from omnigen.errors import EXIT_BAD_INPUT, OmnigenError
    from omnigen.pipeline import build

    loaded, clashes = _load_all(args.profiles, args.output)
    if clashes:
        for clash in clashes:
            print(clash, file=sys.stderr)
        print("nothing was built", file=sys.stderr)
        return EXIT_BAD_INPUT
    failures = 0
    worst = 0
    progress = _progress(len(args.profiles)) if sys.stderr.isatty() and not args.quiet else None
    for path in args.profiles:
        try:
            result = build(
                path,
                force=args.force,
                out_root=args.output,
                on_wait=_waiting(path, args.quiet or progress is not None),
                loaded_profile=loaded.get(path),
            )
            if not args.quiet and progress is None:
                print(_summary(result))
            if progress is None:
                _print_warnings(result)
        except OmnigenError as error:
            failures += 1
            worst = max(worst, error.exit_code)
            print(error.render(), file=sys.stderr)
        if progress is not None:
            progress(path)
    if not args.quiet:
        print(f"{len(args.profiles) - failures} of {len(args.profiles)} profiles built", file=sys.stderr)
    return worst if failures else 0 if worst == 0 else EXIT_BAD_INPUT


def _waiting(profile: Path | None, quiet: bool) -> Callable[[], None] | None:
    """What to say while another build of the same profile holds its secrets lock."""
    if quiet:
        return None
    name = profile if profile is not None else "the default profile"
    return lambda: print(f"{name}: waiting for another omnigen build of this profile to finish (its secrets are locked)", file=sys.stderr)


def _progress(total: int):  # type: ignore[no-untyped-def]
    """A one-line progress bar on stderr, for terminals only."""
    done = 0
    width = 30

    def step(path: Path) -> None:
        nonlocal done
        done += 1
        filled = width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {path.name[:40]:<40}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return step
