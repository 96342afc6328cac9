"""Policy rules (OV1xx): every hazard in every spelling, at the right line.

Three angles: the hand-written corpus (tests/lint_corpus/policy, one case per
hazard and spelling, each annotated with the rule and line it must produce);
the spelling catalogue (tests/hazards.py), checked against the real Compose
binary so it only holds what Compose really reads as the hazard; and a
hypothesis search that plants one catalogue spelling into a random service of
a clean generated deployment, in the compose file or an override file, and
requires lint to report it exactly there.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnigen.tools.lint import lint
from omnigen.verify.deployment import load_deployment
from omnigen.verify.rules import all_rules, run_rules
from omnigen.verify.rules.policy import is_internal
from tests.conftest import EXAMPLES, compile_example, compose_binary, write_files
from tests.corpus import Case, cases
from tests.hazards import SPELLINGS, Spelling, plant

POLICY_CASES = cases("policy")


@pytest.mark.parametrize("case", POLICY_CASES, ids=lambda case: case.name)
def test_policy_corpus(case: Case) -> None:
    result = case.run()
    assert case.found(result) == case.expected, "\n".join(finding.render() for finding in result.report.findings)


def test_every_policy_rule_has_corpus_cases() -> None:
    covered = {rule_id for case in POLICY_CASES for rule_id, _, _ in case.expected}
    policy_rules = {item.id for item in all_rules() if item.kind == "policy"}
    assert policy_rules <= covered, f"policy rules without a corpus case: {sorted(policy_rules - covered)}"


def test_corpus_cases_are_valid_compose_unless_marked() -> None:
    """The corpus is written in spellings Compose accepts, so lint is judged on real input."""
    for case in POLICY_CASES:
        if not case.compose_valid:
            continue
        folder = case.target if case.target.is_dir() else case.target.parent
        args = ["config", "-q"] if case.target.is_dir() else ["-f", str(case.target), "config", "-q"]
        code, _, errors = _compose(folder, *args)
        assert code == 0, f"{case.name}: {errors}"


def _compose(folder: Path, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the real Compose binary run in `folder`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    done = subprocess.run([str(compose_binary()), *args], cwd=folder, capture_output=True, text=True, env=env, check=False, timeout=60)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda spelling: spelling.name)
def test_spellings_are_what_compose_reads(spelling: Spelling, tmp_path: Path) -> None:
    """Each catalogue spelling is accepted by the real Compose binary and means the hazard."""
    body = "\n".join(["services:", "  target:", '    image: "busybox:1.36"', *("    " + line for line in spelling.lines)]) + "\n"
    if spelling.attribute == "image":
        body = "\n".join(["services:", "  target:", *("    " + line for line in spelling.lines)]) + "\n"
    (tmp_path / "compose.yaml").write_text(body)
    code, output, errors = _compose(tmp_path, "config", "--format", "json")
    assert code == 0, errors
    service = json.loads(output)["services"]["target"]
    assert spelling.reads_as(service), json.dumps(service, indent=1)


@cache
def _clean_output(profile: str) -> dict[str, str]:
    return compile_example(next(path for path in EXAMPLES if path.stem == profile)).files


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[str, str, Spelling, str]:
    profile = draw(st.sampled_from([path.stem for path in EXAMPLES]), label="profile")
    services = yaml.safe_load(_clean_output(profile)["docker-compose.yml"])["services"]
    service = draw(st.sampled_from(sorted(services)), label="service")
    internal = is_internal(service, services[service])
    spelling = draw(st.sampled_from([s for s in SPELLINGS if internal or not s.internal_only]), label="spelling")
    placement = draw(st.sampled_from(["main", "override"]), label="placement")
    return profile, service, spelling, placement


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_planted_hazard_is_always_reported(mutation: tuple[str, str, Spelling, str]) -> None:
    profile, service, spelling, placement = mutation
    files = _clean_output(profile)
    planted = plant(files["docker-compose.yml"], service, spelling, placement)
    with tempfile.TemporaryDirectory() as folder:
        write_files(Path(folder), {**files, **planted.files})
        result = lint([folder])
        expected = (spelling.rule, os.path.join(folder, planted.file), planted.line)
        found = {(f.rule_id, os.path.abspath(f.file), f.line) for f in result.report.findings}
        rendered = "\n".join(f.render() for f in result.report.findings)
        assert not [f for f in result.report.findings if f.rule_id == "OV000"], f"the planted file does not parse:\n{rendered}"
        assert expected in found, f"{spelling.name} planted in {service} ({placement}) at {planted.file}:{planted.line}, got:\n{rendered}"


@pytest.mark.parametrize(
    ("project_dir", "source", "flagged"),
    [
        ("/root/site/out/acme", "./certs", False),  # a root user's checkout: omnigen's own output
        ("/root/site", "./data", False),
        ("/root/site/prod-env", "../configs/nginx.conf", False),  # the v2 layout, under /root
        ("/root/site", "../.ssh", True),  # climbs into /root itself
        ("/root/site/out/acme", "../../../.ssh", True),
        ("/etc/omnivoip", "../passwd", True),
        ("/root", "./.ssh", True),  # a deployment kept in /root itself
        ("/", "./etc", True),
        ("/srv/acme", "/etc", True),
        ("/srv/acme", "./data", False),
    ],
)
def test_relative_mounts_inside_the_deployment_are_its_own_files_wherever_it_lives(project_dir: str, source: str, flagged: bool) -> None:
    compose = f"services:\n  web:\n    image: nginx:1.27.3\n    volumes:\n      - {source}:/data:ro\n"
    files = {posixpath.join(project_dir, "docker-compose.yml"): compose}

    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    deployment = load_deployment(next(iter(files)), read, lambda _path: [])
    found = {finding.rule_id for finding in run_rules(deployment).findings}
    assert ("OV108" in found) == flagged, found
