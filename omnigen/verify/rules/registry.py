"""What a rule is and how one registers (`@rule`): the part of the rule set the checks import.

The checks (policy.py, drift.py, edge.py) import this module, never the package, so the
package (`omnigen.verify.rules`: run_rules, all_rules) can import them without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from omnigen.verify.deployment import Deployment, Location

Severity = Literal["error", "warning"]

# Pseudo-rules for the input itself; they are not checks and cannot be disabled.
INPUT_ERROR = "OV000"
UNKNOWN_DISABLE = "OV001"
INPUT_WARNING = "OV002"
PSEUDO_RULES: dict[str, tuple[str, Severity, str]] = {
    INPUT_ERROR: ("input-error", "error", "Compose would refuse this input (invalid YAML, duplicate key, bad interpolation, missing file)."),
    UNKNOWN_DISABLE: ("unknown-disable", "warning", "A disable comment names a rule that does not exist, so it disables nothing."),
    INPUT_WARNING: ("input-warning", "warning", "Part of the input was ignored or could not be followed (e.g. an override file Compose skips)."),
}


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    rule_id: str
    severity: str
    message: str
    service: str | None = field(default=None, compare=False)
    related: tuple[Location, ...] = field(default=(), compare=False)

    @property
    def location(self) -> Location:
        return Location(self.file, self.line)

    def render(self) -> str:
        text = f"{self.file}:{self.line}: [{self.severity}] {self.message} ({self.rule_id})"
        for location in self.related:
            text += f"\n    see {location}"
        return text


@dataclass(frozen=True)
class Hit:
    """What a check reports; the runner adds the rule's id and severity."""

    location: Location
    message: str
    service: str | None = None
    related: tuple[Location, ...] = ()


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
    kind: Literal["policy", "drift"]


RULES: dict[str, Rule] = {}


def rule(id: str, name: str, severity: Severity, rationale: str, reference: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        assert id not in RULES, f"duplicate rule id {id}"
        kind: Literal["policy", "drift"] = "policy" if id.startswith("OV1") else "drift"
        RULES[id] = Rule(id, name, severity, rationale, reference, check, kind)
        return check

    return register
