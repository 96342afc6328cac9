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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from omnigen.deployment import (
    COMPOSE_FILE_NAMES,
    OVERRIDE_FILE_NAMES,
    Deployment,
    LoadProblem,
    Location,
    default_compose_files,
    load_deployment,
)
from omnigen.errors import DeploymentInputError, InputIssue
from omnigen.formats import dotenv
from omnigen.rules import DisableUse, Finding, Report, RuleContext, all_rules, run_rules


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
    try:
        return Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def list_dir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _compose_file_from_env(folder: str) -> list[str] | None:
    """COMPOSE_FILE set in the folder's .env selects the files, as it does for `docker compose`."""
    text = read_text(posixpath.join(folder, ".env"))
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
        if not name.startswith(".") and os.path.isdir(posixpath.join(folder, name)) and default_compose_files(posixpath.join(folder, name), os.path.isfile)[0]
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
        files, ignored = default_compose_files(folder, os.path.isfile)
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
    for target in targets:
        deployment = load_deployment(list(target.files), read_text, list_dir, env_path=target.env_file, display=shown)
        read = ", ".join(shown(file) for file in target.files)
        for ignored in target.ignored:
            message = f"Compose reads {read} and ignores this file (only the first of the names it looks for counts)"
            deployment.problems.append(LoadProblem(Location(shown(ignored), 1), message, "warning"))
        fatal += [InputIssue(p.location.file, "", p.message, line=p.location.line) for p in deployment.problems if p.fatal]
        deployments.append(deployment)
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
    return LintResult(deployments, Report(sorted(set(findings)), sorted(suppressed, key=lambda pair: pair[0]), disables))


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
        "summary": {"errors": report.errors, "warnings": report.warnings, "suppressed": len(report.suppressed)},
    }
    return json.dumps(document, indent=2) + "\n"


def rules_table() -> str:
    lines = []
    for item in all_rules():
        lines.append(f"{item.id}  {item.severity:<7}  {item.name:<28}  {item.rationale}")
    return "\n".join(lines) + "\n"
