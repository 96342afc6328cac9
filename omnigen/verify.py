"""Stage 4: parse the rendered files back and hold them to the rule set.

The same rules that `omnigen lint` applies to hand-written deployments run here
on the in-memory output, plus checks only the generator can make: that the
files say exactly what the plan says. Any finding is an omnigen bug (exit 3)
and nothing is written.
"""

from __future__ import annotations

import posixpath

from omnigen.deployment import Deployment, load_deployment
from omnigen.errors import VerifyError
from omnigen.formats import dotenv
from omnigen.formats.composeports import parse_port
from omnigen.plan import Plan
from omnigen.rules import RuleContext, run_rules


def deployment_from_memory(files: dict[str, str]) -> Deployment:
    def read(path: str) -> str | None:
        return files.get(posixpath.normpath(path))

    def list_dir(path: str) -> list[str] | None:
        prefix = posixpath.normpath(path) + "/"
        names = sorted({name[len(prefix) :].split("/", 1)[0] for name in files if name.startswith(prefix)})
        return names or None

    return load_deployment("docker-compose.yml", read, list_dir)


def _plan_agreement(plan: Plan, files: dict[str, str], deployment: Deployment) -> list[str]:
    problems: list[str] = []
    env = dotenv.as_dict(dotenv.parse(files[".env"]))
    expected_env = plan.env_map
    if env != expected_env:
        differing = sorted(key for key in expected_env.keys() | env.keys() if env.get(key) != expected_env.get(key))
        problems.append(f".env: does not read back as planned: {', '.join(differing)}")
    for service_name, planned in plan.published.items():
        service = deployment.services.get(service_name, {})
        entries = service.get("ports") or []
        actual = [parse_port(entry) for entry in entries]
        expected = [parse_port(port.compose) for port in planned]
        if actual != expected:
            problems.append(f"docker-compose.yml: {service_name} publishes {entries}, plan says {[p.compose for p in planned]}")
    for service_name, service in deployment.services.items():
        if service.get("ports") and service_name not in plan.published:
            problems.append(f"docker-compose.yml: {service_name} publishes ports the plan does not have")
    return problems


def verify(plan: Plan, files: dict[str, str]) -> Deployment:
    deployment = deployment_from_memory(files)
    findings = run_rules(deployment, RuleContext(calls=plan.rtp.calls))
    problems = [finding.render() for finding in findings]
    problems += _plan_agreement(plan, files, deployment)
    if problems:
        raise VerifyError(problems)
    return deployment
