"""Verify one compose bundle: parse the rendered files back and hold them to the rule set.

The same rules that `omnigen lint` applies to hand-written deployments run here
on the in-memory output, plus checks only the generator can make: that the
files say exactly what the plan says. Any finding is an omnigen bug (exit 3)
and nothing is written.
"""

from __future__ import annotations

from omnigen.errors import VerifyError
from omnigen.formats import dotenv
from omnigen.formats.composemerge import split_volume
from omnigen.formats.composeports import parse_port
from omnigen.plan.plan import VOLUME_MOUNTS, Plan
from omnigen.verify.deployment import Deployment, deployment_from_memory
from omnigen.verify.rules import RuleContext, run_rules


def _plan_agreement(plan: Plan, files: dict[str, str], deployment: Deployment) -> list[str]:
    problems: list[str] = []
    env = dotenv.as_dict(dotenv.parse(files[".env"]))
    expected_env = plan.env_map
    if env != expected_env:
        differing = sorted(key for key in expected_env.keys() | env.keys() if env.get(key) != expected_env.get(key))
        problems.append(f".env: does not read back as planned: {', '.join(differing)}")
    for path, variables in plan.secret_env.items():
        if dotenv.as_dict(dotenv.parse(files[path])) != {var.key: var.value for var in variables}:
            problems.append(f"{path}: does not read back as planned")
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
    problems += _lan_agreement(plan, deployment)
    problems += _volume_agreement(plan, deployment)
    return problems


def _lan_agreement(plan: Plan, deployment: Deployment) -> list[str]:
    """network.mode ipvlan/macvlan: the LAN network and Asterisk's address on it are exactly the plan's."""
    networks = deployment.data.get("networks")
    networks = networks if isinstance(networks, dict) else {}
    attached = deployment.services.get("asterisk", {}).get("networks")
    attached = attached if isinstance(attached, dict) else {}
    lan = plan.network.lan
    if lan is None:
        extra = sorted(name for name, network in networks.items() if isinstance(network, dict) and network.get("driver") != "bridge")
        return [f"docker-compose.yml: networks {extra} are not bridge networks, but network.mode is bridge"] if extra else []
    network = networks.get(lan.name)
    expected_network = {
        "driver": lan.driver,
        "driver_opts": {"parent": lan.parent, lan.mode_option: lan.mode_value},
        "ipam": {"config": [{"subnet": lan.subnet, "gateway": lan.gateway, "ip_range": lan.ip_range}]},
    }
    problems = []
    if network != expected_network:
        problems.append(f"docker-compose.yml: network {lan.name} is {network}, plan says {expected_network}")
    membership = attached.get(lan.name)
    if not isinstance(membership, dict) or membership.get("ipv4_address") != lan.address:
        problems.append(f"docker-compose.yml: asterisk joins {lan.name} as {membership}, plan says address {lan.address}")
    return problems


def _volume_agreement(plan: Plan, deployment: Deployment) -> list[str]:
    """Every named volume is declared as planned (its own, or adopted by its real name) and mounted where VOLUME_MOUNTS says."""
    declared = deployment.data.get("volumes")
    declared = declared if isinstance(declared, dict) else {}
    problems = []
    expected = {volume.key: volume.definition for volume in plan.volumes}
    actual = {key: value or {} for key, value in declared.items()}
    if actual != expected:
        problems.append(f"docker-compose.yml: volumes are {actual}, plan says {expected}")
    mounted = set()
    for service_name, service in deployment.services.items():
        for entry in service.get("volumes") or []:
            parts = split_volume(entry) if isinstance(entry, str) else None
            if parts and len(parts) > 1 and parts[0] in expected:
                mounted.add((parts[0], service_name, parts[1]))
    planned = {(key, service, target) for key, mounts in VOLUME_MOUNTS.items() for service, target in mounts if plan.runs(service)}
    if mounted != planned:
        problems.append(f"docker-compose.yml: named volumes mounted as {sorted(mounted - planned)}, missing {sorted(planned - mounted)}")
    return problems


def verify_bundle(plan: Plan, files: dict[str, str]) -> Deployment:
    """Verify a single-host build or one host's bundle. Returns its Deployment; raises VerifyError."""
    deployment = deployment_from_memory(files)
    report = run_rules(deployment, RuleContext(calls=plan.rtp.calls))
    # Generated files carry no disable comments, so nothing can be suppressed here; count both to be sure.
    problems = [finding.render() for finding in report.findings] + [finding.render() for finding, _ in report.suppressed]
    problems += _plan_agreement(plan, files, deployment)
    if problems:
        raise VerifyError(problems)
    return deployment
