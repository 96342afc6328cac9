"""Third-party judges of lint: dclint (npm, pinned in package.json) and
check-jsonschema's compose-spec schema, with the mapping in docs/rules.md.

- Every policy finding lint reports on the corpus is reported by the judge the
  mapping names (same file, same service), or the mapping says why the rule is
  out of both judges' scope.
- For the rules dclint covers, everything dclint reports on the corpus (files
  without interpolation, which dclint does not perform) lint reports too.
- On omnigen's own outputs dclint reports no errors.
dclint missing is a failure, never a skip: .ci/install-node-tools.sh installs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from omnigen.verify.deployment import swarm_stack
from omnigen.verify.rules import all_rules
from omnigen.verify.rules.policy import FLOATING_TAGS
from tests.conftest import EXAMPLES, ROOT, compile_example, node_tool, write_files
from tests.corpus import CORPUS, cases

DCLINT = ROOT / "node_modules" / ".bin" / "dclint"
DCLINT_CONFIG = ROOT / ".dclintrc.yaml"
RULES_DOC = ROOT / "docs" / "rules.md"
OUT_OF_SCOPE = "out of scope"


def _section(title: str) -> str:
    text = RULES_DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _table(title: str) -> list[list[str]]:
    rows = []
    for line in _section(title).split("\n"):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| OV"):
            rows.append(cells)
    return rows


@cache
def judge_mapping() -> dict[str, tuple[str, str, str]]:
    """Rule id -> (dclint rule or 'out of scope', schema or 'out of scope', why), from docs/rules.md."""
    return {row[0]: (row[1], row[2], row[3]) for row in _table("Third-party agreement")}


def _require_dclint() -> None:
    node_tool("dclint")


def _dclint(files: list[Path], output: Path) -> list[dict[str, Any]]:
    _require_dclint()
    # -o: stdout to a pipe is cut at 64 KiB when node exits; the report file is not.
    done = subprocess.run(
        [str(DCLINT), "-c", str(DCLINT_CONFIG), "-f", "json", "-o", str(output), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )
    if not output.exists():
        pytest.fail(f"dclint did not run (exit {done.returncode}): {done.stderr}")
    report: list[dict[str, Any]] = json.loads(output.read_text())
    return report


def _schema_check(files: list[Path]) -> subprocess.CompletedProcess[str]:
    """check-jsonschema's vendor.compose-spec schema on `files` (one run; it names each failing file)."""
    tool = str(Path(sys.executable).with_name("check-jsonschema"))
    return subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", *map(str, files)], capture_output=True, text=True, check=False, timeout=120)


def _compose_files() -> list[Path]:
    return sorted(path for path in CORPUS.rglob("*") if path.suffix in {".yml", ".yaml"})


@cache
def _corpus_findings() -> list[tuple[str, str, str | None, bool]]:
    """(rule, absolute file, service, whether the value came through ${...}) of every policy finding on the corpus."""
    found = []
    for case in cases("policy") + cases("drift"):
        for finding in case.run().report.findings:
            if finding.rule_id.startswith("OV1"):
                line = Path(finding.file).read_text().split("\n")[finding.line - 1]
                found.append((finding.rule_id, os.path.abspath(finding.file), finding.service, "$" in line))
    return found


def _service_defined_in(file: str, service: str | None) -> bool:
    data = yaml.safe_load(Path(file).read_text()) or {}
    return service in (data.get("services") or {})


def test_mapping_names_every_policy_rule_and_real_dclint_rules() -> None:
    mapping = judge_mapping()
    policy = {item.id for item in all_rules() if item.kind == "policy"}
    assert set(mapping) == policy
    _require_dclint()
    dclint_rules = set(re.findall(r'static name="([a-z-]+)"', (ROOT / "node_modules/dclint/dist/index.cjs").read_text()))
    for rule_id, (dclint, schema, why) in mapping.items():
        assert dclint == OUT_OF_SCOPE or dclint in dclint_rules, f"{rule_id}: {dclint} is not a dclint 3.1.0 rule"
        assert schema == OUT_OF_SCOPE, f"{rule_id}: the compose-spec schema has no policy checks; say why in docs/rules.md"
        assert why, f"{rule_id}: the mapping must say why"


def test_every_policy_finding_is_confirmed_by_a_judge_or_documented_out_of_scope(tmp_path: Path) -> None:
    mapping = judge_mapping()
    files = _compose_files()
    report = _dclint(files, tmp_path / "dclint.json")
    dclint_found = {
        (message["rule"], os.path.abspath(entry["filePath"]), (message.get("data") or {}).get("serviceName"))
        for entry in report
        for message in entry["messages"]
    }
    unconfirmed = []
    for rule_id, file, service, interpolated in _corpus_findings():
        dclint_rule, _, _ = mapping[rule_id]
        if dclint_rule == OUT_OF_SCOPE:
            continue
        if interpolated or not _service_defined_in(file, service):
            # dclint reads ${VAR} literally and judges each file's own services (no extends, no anchors).
            continue
        if (dclint_rule, file, service) not in dclint_found:
            unconfirmed.append((rule_id, file, service))
    assert not unconfirmed, f"lint findings dclint does not confirm: {unconfirmed}"
    covered = {rule_id for rule_id, (dclint_rule, _, _) in mapping.items() if dclint_rule != OUT_OF_SCOPE}
    confirmed = {rule_id for rule_id, _, _, interpolated in _corpus_findings() if rule_id in covered and not interpolated}
    assert confirmed == covered, "every dclint-covered rule is exercised on the corpus"


def test_lint_reports_what_dclint_reports_for_the_rules_it_covers(tmp_path: Path) -> None:
    mapping = judge_mapping()
    by_dclint_rule = {dclint_rule: rule_id for rule_id, (dclint_rule, _, _) in mapping.items() if dclint_rule != OUT_OF_SCOPE}
    # Single-file cases only: dclint judges each file alone, lint the merged deployment
    # (an override may !reset what its base file sets). And no interpolation, which dclint lacks.
    # Not Swarm stacks either: dclint judges Compose files, and a stack's ports cannot name a host
    # address (OV109 reports routing-mesh ports there instead; docs/rules.md).
    files = [
        case.target
        for case in cases("policy") + cases("drift")
        if case.target.is_file() and "$" not in case.target.read_text() and not swarm_stack(yaml.safe_load(case.target.read_text()) or {})
    ]
    ours = {(rule_id, file, service) for rule_id, file, service, _ in _corpus_findings()}
    missed = []
    for entry in _dclint(files, tmp_path / "dclint.json"):
        for message in entry["messages"]:
            if message["rule"] in by_dclint_rule:
                key = (by_dclint_rule[message["rule"]], os.path.abspath(entry["filePath"]), (message.get("data") or {}).get("serviceName"))
                if key not in ours:
                    missed.append((message["rule"], key))
    assert not missed, f"dclint reports what lint does not: {missed}"


def test_the_schema_accepts_the_corpus_so_hazards_are_out_of_its_scope() -> None:
    # check-jsonschema's YAML reader does not know Compose's !reset/!override tags.
    files = [path for path in _compose_files() if not re.search(r"!(reset|override)\b", path.read_text())]
    result = _schema_check(files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dclint_config_prohibits_lints_moving_tags() -> None:
    config = yaml.safe_load(DCLINT_CONFIG.read_text())
    level, options = config["rules"]["service-image-require-explicit-tag"]
    assert level == 2 and set(options["prohibitedTags"]) == FLOATING_TAGS


def test_dclint_reports_no_errors_on_omnigens_outputs(tmp_path: Path) -> None:
    files = []
    for profile in EXAMPLES:
        folder = write_files(tmp_path / profile.stem, compile_example(profile).files)
        files.append(folder / "docker-compose.yml")
    report = _dclint(files, tmp_path / "dclint.json")
    errors = [(entry["filePath"], message["line"], message["rule"], message["message"]) for entry in report for message in entry["messages"] if message["type"] == "error"]
    assert not errors
    assert len(report) == len(files), "dclint judged every output"


def test_rules_doc_lists_every_rule_with_its_severity() -> None:
    rows = {row[0]: row for row in _table("Rules")}
    for item in all_rules():
        assert item.id in rows, f"{item.id} is missing from docs/rules.md"
        assert rows[item.id][1] == item.name and rows[item.id][2] == item.severity, rows[item.id]
        assert rows[item.id][3] and rows[item.id][4], f"{item.id}: rationale and reference"
    registered = {item.id for item in all_rules()} | {"OV000", "OV001", "OV002"}
    assert set(rows) == registered, f"documented rules that do not exist: {sorted(set(rows) - registered)}"
    disable = _section("Disabling a rule")
    for syntax in ("disable=", "disable-next-line=", "disable-file=", "--disable"):
        assert syntax in disable
