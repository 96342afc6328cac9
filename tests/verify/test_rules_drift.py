"""Cross-file rules (OV2xx) on the drift corpus: each case says, in its files,
which rule must fire on which line and which other file's line it must name."""

from __future__ import annotations

import os

import pytest

from omnigen.verify.rules import all_rules
from tests.corpus import Case, cases

DRIFT_CASES = cases("drift")
# Rules about two files disagreeing: their findings must point at both.
CROSS_FILE_RULES = {"OV201", "OV204", "OV205", "OV206", "OV207", "OV210", "OV212", "OV213", "OV215", "OV216"}


@pytest.mark.parametrize("case", DRIFT_CASES, ids=lambda case: case.name)
def test_drift_corpus(case: Case) -> None:
    result = case.run()
    rendered = "\n".join(finding.render() for finding in result.report.findings)
    assert case.found(result) == case.expected, rendered
    assert case.expected_related <= case.related_found(result), rendered


def test_every_drift_rule_has_corpus_cases() -> None:
    covered = {rule_id for case in DRIFT_CASES for rule_id, _, _ in case.expected}
    drift_rules = {item.id for item in all_rules() if item.id.startswith("OV2")}
    assert drift_rules <= covered, f"drift rules without a corpus case: {sorted(drift_rules - covered)}"


def test_cross_file_findings_name_both_files() -> None:
    """A disagreement between two files is reported at one and names the other (Finding.related)."""
    seen: set[str] = set()
    for case in DRIFT_CASES:
        for finding in case.run().report.findings:
            if finding.rule_id not in CROSS_FILE_RULES or not finding.related:
                continue
            seen.add(finding.rule_id)
            for location in finding.related:
                assert os.path.exists(location.file), location
                assert location.line >= 1
    cross_file_cases = {rule_id for case in DRIFT_CASES for rule_id, _, _ in case.expected_related}
    assert cross_file_cases <= seen
    assert {"OV201", "OV204", "OV205", "OV206", "OV207", "OV210"} <= cross_file_cases


@pytest.mark.parametrize("case", [case for case in DRIFT_CASES if case.expected_related], ids=lambda case: case.name)
def test_related_locations_are_in_another_file_or_line(case: Case) -> None:
    result = case.run()
    for finding in result.report.findings:
        for location in finding.related:
            assert (location.file, location.line) != (finding.file, finding.line)
