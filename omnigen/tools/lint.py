"""`omnigen lint`: find a deployment on disk the way `docker compose` would, load
it with the same loader the build's verify stage uses, run the shared rule set
and report.

Finding the files follows Compose: in a folder, the first of compose.yaml,
compose.yml, docker-compose.yml, docker-compose.yaml plus the first override
file (or COMPOSE_FILE from the folder's .env); a default-named file brings its
override along, since `docker compose up` next to it would read both; a file
with any other name is read alone (as `docker compose -f FILE`).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omnigen.errors import DeploymentInputError, InputFileError, InputIssue, OmnigenError
from omnigen.formats import dotenv
from omnigen.inputs.inputfile import MAX_DEPLOYMENT_BYTES, read_input
from omnigen.verify.deployment import Deployment, LoadProblem, Location, load_deployment
from omnigen.verify.rules import DisableUse, Finding, Report, RuleContext, all_rules, run_rules
from omnigen.write.composefiles import COMPOSE_FILE_NAMES, OVERRIDE_FILE_NAMES, default_compose_files, unwritten_compose_files


@dataclass(frozen=True)
class Target:
    """One deployment to lint: its compose files in Compose's order."""

    files: tuple[str, ...]
    ignored: tuple[str, ...] = ()
    env_file: str | None = None


@dataclass
class LintResult:
    deployments: list[Deployment]
    report: Report
    # Compose files read from an omnigen output folder that its manifest does not list (a site override, a stray compose.yaml).
    unwritten: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return sorted({name for deployment in self.deployments for name in deployment.texts})

    def exit_code(self, *, strict: bool) -> int:
        return 1 if self.report.errors or (strict and self.report.warnings) else 0


def shown(path: str) -> str:
    """A path as users see it: relative to the working folder when inside it."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else os.path.abspath(path)


def read_text(path: str) -> str | None:
    """A deployment's file from disk (deployment.Reader): bounded, regular files only (omnigen.inputs.inputfile).

    A folder reads as absent, as before: Docker creates one where a bind-mounted file was missing.
    """
    if os.path.isdir(path):
        return None
    data = read_input(path, limit=MAX_DEPLOYMENT_BYTES, what="deployment file")
    return data.decode("utf-8") if data is not None else None


def list_dir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _compose_file_from_env(folder: str) -> list[str] | None:
    """COMPOSE_FILE set in the folder's .env selects the files, as it does for `docker compose`."""
    try:
        text = read_text(posixpath.join(folder, ".env"))
    except (OSError, UnicodeError, InputFileError):
        return None  # loading the deployment reports it
    if text is None:
        return None
    try:
        env = dotenv.as_dict(dotenv.parse(text))
    except dotenv.DotenvError:
        return None
    if not env.get("COMPOSE_FILE"):
        return None
    separator = env.get("COMPOSE_PATH_SEPARATOR") or ":"
    return [posixpath.normpath(posixpath.join(folder, name)) for name in env["COMPOSE_FILE"].split(separator) if name]


def deployments_below(folder: str) -> list[str]:
    """The subfolders (one level down, not hidden) that hold a compose file, as in the v2 layout's prod-env/."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [
        name
        for name in names
        if not name.startswith(".") and os.path.isdir(posixpath.join(folder, name)) and default_compose_files(posixpath.join(folder, name), os.path.exists)[0]
    ]


def find_target(path: str, env_file: str | None = None) -> Target:
    absolute = os.path.abspath(path)
    if not os.path.exists(absolute):
        raise DeploymentInputError([InputIssue(path, "", "no such file or folder", hint="give a compose file or the folder that holds it")])
    is_folder = os.path.isdir(absolute)
    folder = absolute if is_folder else posixpath.dirname(absolute)
    name = posixpath.basename(absolute)
    if is_folder or name in OVERRIDE_FILE_NAMES or name in COMPOSE_FILE_NAMES:
        selected = _compose_file_from_env(folder) if is_folder else None
        if selected:
            return Target(tuple(selected), (), env_file)
        # Any kind of file counts, as for Compose: a FIFO or folder is then refused when read, not skipped.
        files, ignored = default_compose_files(folder, os.path.exists)
        if not is_folder and name in COMPOSE_FILE_NAMES and files and files[0] != absolute:
            # The user named a default file that Compose would not pick: lint what they named, with its override.
            files = [absolute, *[f for f in files[1:] if posixpath.basename(f) in OVERRIDE_FILE_NAMES]]
            ignored = [f for f in ignored if f != absolute]
        if not files:
            below = deployments_below(absolute) if is_folder else []
            hint = f"looked for {', '.join(COMPOSE_FILE_NAMES)}"
            if below:
                hint = f"the compose file is one folder down: run `omnigen lint {' or '.join(posixpath.join(path, name) for name in below)}`"
            raise DeploymentInputError(
                [InputIssue(path, "", "no compose file here", got=", ".join(COMPOSE_FILE_NAMES[:1]) + "... none found", hint=hint)]
            )
        return Target(tuple(files), tuple(ignored), env_file)
    return Target((absolute,), (), env_file)


def _not_in_manifest(files: Sequence[str]) -> list[str]:
    """The files among `files` that sit in an omnigen output folder whose manifest does not list them."""
    from omnigen.write.outputs import MANIFEST, read_manifest

    found = []
    for file in files:
        folder = Path(posixpath.dirname(file))
        for root in (folder, *folder.parents):  # hosts/<name>/ of a multi-host output: the manifest is at the top
            if not (root / MANIFEST).is_file():
                continue
            try:
                manifest, _ = read_manifest(root)
            except OmnigenError:
                manifest = None
            if manifest is not None and Path(file).relative_to(root).as_posix() not in manifest.files:
                found.append(file)
            break
    return found


def lint(paths: Sequence[str], *, calls: int | None = None, disabled: Sequence[str] = (), env_file: str | None = None) -> LintResult:
    targets: list[Target] = []
    for path in paths:
        target = find_target(path, os.path.abspath(env_file) if env_file else None)
        if target not in targets:
            targets.append(target)
    deployments: list[Deployment] = []
    findings: list[Finding] = []
    suppressed: list[tuple[Finding, DisableUse]] = []
    disables: list[DisableUse] = []
    fatal: list[InputIssue] = []
    unwritten: list[str] = []
    for target in targets:
        deployment = load_deployment(list(target.files), read_text, list_dir, env_path=target.env_file, display=shown)
        read = ", ".join(shown(file) for file in target.files)
        for ignored in target.ignored:
            message = f"Compose reads {read} and ignores this file (only the first of the names it looks for counts)"
            deployment.problems.append(LoadProblem(Location(shown(ignored), 1), message, "warning"))
        fatal += [InputIssue(p.location.file, "", p.message, line=p.location.line) for p in deployment.problems if p.fatal]
        deployments.append(deployment)
        unwritten += [shown(file) for file in _not_in_manifest(target.files)]
        report = run_rules(deployment, RuleContext(calls=calls), disabled)
        findings += report.findings
        suppressed += report.suppressed
        disables += [use for use in report.disables if use.source is not None]
    if fatal:
        raise DeploymentInputError(fatal)
    if disabled:
        # One entry for the command line's --disable, however many deployments it applied to.
        from_run = sum(1 for _, use in suppressed if use.source is None)
        disables.insert(0, DisableUse(None, tuple(sorted(set(disabled))), from_run))
    return LintResult(deployments, Report(sorted(set(findings)), sorted(suppressed, key=lambda pair: pair[0]), disables), unwritten)


@dataclass(frozen=True)
class ComposeRun:
    """What `docker compose` would run in one folder of an omnigen output that holds compose files omnigen did not write."""

    folder: Path  # the compose folder (the output folder, or hosts/<name>/ of a multi-host one)
    reads: tuple[str, ...]  # the files Compose reads there, in its order (names relative to `folder`)
    unwritten: tuple[str, ...]  # compose and override files there that omnigen did not write
    replaced: tuple[str, ...]  # omnigen's compose files that Compose would not read
    findings: tuple[Finding, ...]  # of the merged configuration; disables in the files count for nothing here
    problem: str | None = None  # the merged configuration cannot be loaded at all

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if finding.severity == "error")

    @property
    def breaks_policy(self) -> bool:
        return bool(self.replaced or self.errors or self.problem)


def compose_runs(out_dir: Path, written: Collection[str], calls: Mapping[str, int | None]) -> list[ComposeRun]:
    """Judge what Compose would run in each compose folder of an output that holds compose files omnigen did not write.

    `written` are the output's files (relative paths), `calls` the bridged calls per compose
    folder ("" for the top). The folder is loaded as `omnigen lint` loads it (the files Compose
    picks, override merged, .env interpolated) and the whole rule set runs on the result.
    """
    runs = []
    for folder, unwritten in unwritten_compose_files(out_dir, written).items():
        where = out_dir / folder
        ours = [name for name in COMPOSE_FILE_NAMES + OVERRIDE_FILE_NAMES if posixpath.join(folder, name) in written]
        try:
            target = find_target(str(where))
        except DeploymentInputError as exc:
            runs.append(ComposeRun(where, (), tuple(unwritten), tuple(ours), (), exc.render()))
            continue
        reads = tuple(posixpath.relpath(file, os.path.abspath(where)) for file in target.files)
        replaced = tuple(name for name in ours if name not in reads)
        try:
            result = lint([str(where)], calls=calls.get(folder))
        except DeploymentInputError as exc:
            runs.append(ComposeRun(where, reads, tuple(unwritten), replaced, (), exc.render()))
            continue
        # A disable comment in a file omnigen did not write must not waive the policy that check enforces.
        findings = sorted({*result.report.findings, *(finding for finding, _ in result.report.suppressed)})
        runs.append(ComposeRun(where, reads, tuple(unwritten), replaced, tuple(findings)))
    return runs


def _unresolved(result: LintResult) -> dict[str, list[Location]]:
    names: dict[str, list[Location]] = {}
    for deployment in result.deployments:
        for item in deployment.unresolved:
            names.setdefault(item.name, []).append(item.location)
    return dict(sorted(names.items()))


def _describe_disable(use: DisableUse) -> str:
    rules = ",".join(use.rules)
    if use.source is None:
        scope = "this run"
    elif use.source.kind == "service":
        scope = f"service {use.source.service!r}"
    elif use.source.kind == "file":
        scope = f"all of {use.source.location.file}"
    else:
        scope = f"line {use.source.target_line}"
    count = f"{use.suppressed} finding{'s' if use.suppressed != 1 else ''}" if use.suppressed else "nothing (unused)"
    reason = f" -- {use.source.reason}" if use.source and use.source.reason else ""
    return f"  {use.where}: {rules} for {scope}: suppressed {count}{reason}"


def render_text(result: LintResult) -> str:
    report = result.report
    lines = [finding.render() for finding in report.findings]
    if lines:
        lines.append("")
    summary = f"{report.errors} error{'s' if report.errors != 1 else ''}, {report.warnings} warning{'s' if report.warnings != 1 else ''}"
    if report.suppressed:
        summary += f", {len(report.suppressed)} suppressed"
    count = len(result.files)
    lines.append(f"{summary} in {count} file{'s' if count != 1 else ''} ({', '.join(result.files)})")
    if report.disables:
        lines.append("disabled:")
        lines += [_describe_disable(use) for use in report.disables]
    if result.unwritten:
        lines.append(f"not written by omnigen (its manifest does not list them), merged by Compose all the same: {', '.join(result.unwritten)}")
    unresolved = _unresolved(result)
    if unresolved:
        lines.append("unresolved variables (Compose substitutes an empty string): " + ", ".join(f"{name} ({len(uses)}x)" for name, uses in unresolved.items()))
    return "\n".join(lines) + "\n"


def _finding_json(finding: Finding) -> dict[str, object]:
    rules = {item.id: item.name for item in all_rules()}
    return {
        "file": finding.file,
        "line": finding.line,
        "severity": finding.severity,
        "rule": finding.rule_id,
        "name": rules.get(finding.rule_id, ""),
        "message": finding.message,
        "service": finding.service,
        "related": [{"file": location.file, "line": location.line} for location in finding.related],
    }


def render_json(result: LintResult) -> str:
    report = result.report
    document = {
        "version": 1,
        "files": result.files,
        "findings": [_finding_json(finding) for finding in report.findings],
        "suppressed": [{**_finding_json(finding), "disabled_by": use.where} for finding, use in report.suppressed],
        "disables": [
            {
                "where": use.where,
                "scope": use.source.kind if use.source else "run",
                "service": use.source.service if use.source else None,
                "line": use.source.target_line if use.source and use.source.kind in {"line", "next-line"} else None,
                "rules": list(use.rules),
                "reason": use.source.reason if use.source else "",
                "suppressed": use.suppressed,
            }
            for use in report.disables
        ],
        "unresolved": [
            {"variable": name, "uses": [{"file": location.file, "line": location.line} for location in uses]} for name, uses in _unresolved(result).items()
        ],
        "not_written_by_omnigen": result.unwritten,
        "summary": {"errors": report.errors, "warnings": report.warnings, "suppressed": len(report.suppressed)},
    }
    return json.dumps(document, indent=2) + "\n"


def rules_table() -> str:
    lines = []
    for item in all_rules():
        lines.append(f"{item.id}  {item.severity:<7}  {item.name:<28}  {item.rationale}")
    return "\n".join(lines) + "\n"
