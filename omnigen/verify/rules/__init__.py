"""The rule set shared by `omnigen build` (its verify stage) and `omnigen lint`.

A rule has a stable id, a severity, a one-line rationale and the benchmark it
comes from. Its check reads a Deployment and yields Hits; it never reads files
itself. `run_rules` turns hits into Findings, applies the disables (command
line and `omnigen: disable=...` comments) and returns a Report that keeps what
was suppressed and by which disable, so nothing is hidden silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omnigen.verify.deployment import Deployment, Directive, Location
from omnigen.verify.rules import drift, edge, policy  # noqa: F401  (the checks register themselves on import)
from omnigen.verify.rules.registry import (
    INPUT_ERROR,
    INPUT_WARNING,
    PSEUDO_RULES,
    RULES,
    UNKNOWN_DISABLE,
    Finding,
    Hit,
    Rule,
    RuleContext,
    Severity,
    rule,
)

__all__ = [
    "INPUT_ERROR",
    "INPUT_WARNING",
    "PSEUDO_RULES",
    "RULES",
    "UNKNOWN_DISABLE",
    "DisableUse",
    "Finding",
    "Hit",
    "Report",
    "Rule",
    "RuleContext",
    "Severity",
    "all_rules",
    "resolve_rule",
    "rule",
    "run_rules",
]


def all_rules() -> list[Rule]:
    return sorted(RULES.values(), key=lambda r: r.id)


def resolve_rule(name: str) -> str | None:
    """A rule id from an id or a name (`OV109`, `ov109`, `port-all-interfaces`); None when unknown."""
    for item in all_rules():
        if name.upper() == item.id or name.lower() == item.name:
            return item.id
    if name.lower() == "all":
        return "all"
    return None


@dataclass(frozen=True)
class DisableUse:
    """One disable (a comment, or --disable on the command line) and what it suppressed."""

    source: Directive | None  # None: the command line
    rules: tuple[str, ...]
    suppressed: int

    @property
    def where(self) -> str:
        return str(self.source.location) if self.source else "command line"


@dataclass
class Report:
    findings: list[Finding]
    suppressed: list[tuple[Finding, DisableUse]]
    disables: list[DisableUse]

    @property
    def errors(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "warning")


def _matches(directive: Directive, finding: Finding, rule_ids: set[str]) -> bool:
    if finding.rule_id not in rule_ids and "all" not in rule_ids:
        return False
    if directive.kind == "file":
        return finding.file == directive.location.file
    if directive.kind == "service":
        return finding.service == directive.service
    wanted = Location(directive.location.file, directive.target_line)
    return wanted in (finding.location, *finding.related)


def run_rules(deployment: Deployment, context: RuleContext | None = None, disabled: Iterable[str] = ()) -> Report:
    """Run every rule; `disabled` holds rule ids (already resolved) turned off for this run."""
    context = context or RuleContext()
    run_disabled = tuple(sorted(set(disabled)))
    findings: set[Finding] = set()
    for problem in deployment.problems:
        rule_id = INPUT_ERROR if problem.severity == "error" else INPUT_WARNING
        findings.add(Finding(problem.location.file, problem.location.line, rule_id, problem.severity, problem.message))
    for item in all_rules():
        for hit in item.check(deployment, context):
            findings.add(Finding(hit.location.file, hit.location.line, item.id, item.severity, hit.message, hit.service, hit.related))

    directives: list[tuple[Directive, set[str]]] = []
    for directive in deployment.directives:
        resolved = {resolve_rule(name) for name in directive.rules}
        for name in directive.rules:
            if resolve_rule(name) is None:
                findings.add(
                    Finding(
                        directive.location.file,
                        directive.location.line,
                        UNKNOWN_DISABLE,
                        "warning",
                        f"disable comment names unknown rule {name!r}; see `omnigen lint --list-rules`",
                    )
                )
        directives.append((directive, {rule_id for rule_id in resolved if rule_id}))

    active: list[Finding] = []
    suppressed_by: dict[int, list[Finding]] = {}
    for finding in sorted(findings):
        if finding.rule_id in PSEUDO_RULES:
            active.append(finding)
            continue
        if finding.rule_id in run_disabled or "all" in run_disabled:
            suppressed_by.setdefault(-1, []).append(finding)
            continue
        for index, (directive, rule_ids) in enumerate(directives):
            if _matches(directive, finding, rule_ids):
                suppressed_by.setdefault(index, []).append(finding)
                break
        else:
            active.append(finding)

    disables: list[DisableUse] = []
    suppressed: list[tuple[Finding, DisableUse]] = []
    if run_disabled:
        use = DisableUse(None, run_disabled, len(suppressed_by.get(-1, [])))
        disables.append(use)
        suppressed += [(finding, use) for finding in suppressed_by.get(-1, [])]
    for index, (directive, _) in enumerate(directives):
        use = DisableUse(directive, directive.rules, len(suppressed_by.get(index, [])))
        disables.append(use)
        suppressed += [(finding, use) for finding in suppressed_by.get(index, [])]
    return Report(active, sorted(suppressed, key=lambda pair: pair[0]), disables)
