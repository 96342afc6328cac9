"""The lint corpus (tests/lint_corpus/): hand-written deployments whose files say,
in comments, what `omnigen lint` must report and where.

Annotations (see tests/lint_corpus/README.md):
  `# expect: OV101`          this line carries exactly one finding of OV101 (`;` in Asterisk configs)
  `# expect-related: OV201`  an OV201 finding names this line as its other location
  `# expect^: OV214`         the same for the line above (formats without trailing comments)
  `# checks: OV101, OV105`   the rules the case is about: their findings must be exactly the expected ones
  `# calls: 50`              run with --calls 50
  `# compose-invalid: why`   Compose itself refuses the file (lint must still explain it)
A case is a single compose file, or a folder (linted at its prod-env/ if it has one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from omnigen.tools.lint import LintResult, lint
from omnigen.verify.rules import Finding

CORPUS = Path(__file__).resolve().parent / "lint_corpus"

_EXPECT = re.compile(r"(?:#|;)\s*expect(?P<related>-related)?(?P<above>\^)?:\s*(?P<rules>OV\d{3}(?:\s*,\s*OV\d{3})*)")
_CHECKS = re.compile(r"#\s*checks:\s*(?P<rules>OV\d{3}(?:\s*,\s*OV\d{3})*)")
_CALLS = re.compile(r"#\s*calls:\s*(?P<calls>\d+)")
_INVALID = re.compile(r"#\s*compose-invalid:")

Location = tuple[str, str, int]  # (rule, file relative to the case, line)


@dataclass
class Case:
    name: str
    target: Path
    root: Path
    files: list[Path]
    expected: set[Location] = field(default_factory=set)
    expected_related: set[Location] = field(default_factory=set)
    checks: set[str] = field(default_factory=set)
    calls: int | None = None
    compose_valid: bool = True

    def relative(self, file: str) -> str:
        return os.path.relpath(os.path.abspath(file), self.root)

    def run(self) -> LintResult:
        return lint([str(self.target)], calls=self.calls)

    def found(self, result: LintResult) -> set[Location]:
        return {(f.rule_id, self.relative(f.file), f.line) for f in result.report.findings if f.rule_id in self.checks}

    def related_found(self, result: LintResult) -> set[Location]:
        return {
            (finding.rule_id, self.relative(location.file), location.line)
            for finding in result.report.findings
            for location in finding.related
            if finding.rule_id in self.checks
        }

    def findings(self, result: LintResult, rule_id: str) -> list[Finding]:
        return [finding for finding in result.report.findings if finding.rule_id == rule_id]


def _case(name: str, target: Path, root: Path, files: list[Path]) -> Case:
    case = Case(name, target, root, files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        relative = os.path.relpath(path, root)
        for number, line in enumerate(text.split("\n"), start=1):
            for match in _EXPECT.finditer(line):
                into = case.expected_related if match.group("related") else case.expected
                line_number = number - 1 if match.group("above") else number
                for rule_id in re.split(r"\s*,\s*", match.group("rules")):
                    into.add((rule_id, relative, line_number))
            if checks := _CHECKS.search(line):
                case.checks.update(re.split(r"\s*,\s*", checks.group("rules")))
            if calls := _CALLS.search(line):
                case.calls = int(calls.group("calls"))
            if _INVALID.search(line):
                case.compose_valid = False
    if not case.checks:
        case.checks = {rule_id for rule_id, _, _ in case.expected | case.expected_related}
    return case


def cases(kind: str) -> list[Case]:
    """Every case under tests/lint_corpus/<kind>/, sorted by name."""
    found = []
    for entry in sorted((CORPUS / kind).iterdir()):
        if entry.is_file() and entry.suffix in {".yml", ".yaml"}:
            found.append(_case(entry.stem, entry, entry.parent, [entry]))
        elif entry.is_dir():
            files = sorted(path for path in entry.rglob("*") if path.is_file())
            target = entry / "prod-env" if (entry / "prod-env").is_dir() else entry
            found.append(_case(entry.name, target, entry, files))
    return found
