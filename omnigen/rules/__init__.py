"""The rule set shared by `omnigen build` (its verify stage) and `omnigen lint`.

A rule has a stable id, a severity, a one-line rationale and the benchmark it
comes from. Its check reads a Deployment and yields Findings; it never reads
files itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from omnigen.deployment import Deployment

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    rule_id: str
    severity: str
    message: str
    service: str | None = field(default=None, compare=False)
    related: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def render(self) -> str:
        text = f"{self.file}:{self.line}: [{self.severity}] {self.message} ({self.rule_id})"
        for path, line in self.related:
            text += f"\n    see {path}:{line}"
        return text


@dataclass(frozen=True)
class Hit:
    """What a check reports; the runner adds the rule's id and severity."""

    file: str
    line: int | None
    message: str
    service: str | None = None
    related: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RuleContext:
    """What a run knows beyond the files: e.g. the calls the user needs."""

    calls: int | None = None


Check = Callable[[Deployment, RuleContext], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    rationale: str
    reference: str
    check: Check


RULES: dict[str, Rule] = {}


def rule(id: str, name: str, severity: Severity, rationale: str, reference: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        assert id not in RULES, f"duplicate rule id {id}"
        RULES[id] = Rule(id, name, severity, rationale, reference, check)
        return check

    return register


def all_rules() -> list[Rule]:
    from omnigen.rules import drift, policy  # noqa: F401  (registration side effect)

    return sorted(RULES.values(), key=lambda r: r.id)


def run_rules(deployment: Deployment, context: RuleContext | None = None, disabled: Iterable[str] = ()) -> list[Finding]:
    context = context or RuleContext()
    skip = set(disabled)
    findings: set[Finding] = set()
    for problem in deployment.problems:
        findings.add(Finding(problem.path, problem.line or 1, "OV000", "error", problem.message))
    for item in all_rules():
        if item.id in skip or item.name in skip:
            continue
        for hit in item.check(deployment, context):
            findings.add(
                Finding(hit.file, hit.line or 1, item.id, item.severity, hit.message, hit.service, hit.related)
            )
    return sorted(findings)
