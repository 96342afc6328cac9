"""A generated deployment on a real Docker engine: it starts, publishes exactly the plan, and goes away.

One deployment (tests/e2e/conftest.py E2E_PROFILE: 10 calls, everything
published on 127.0.0.1) is brought up with the real Compose binary and
`up --wait`, so every health check and every `depends_on: service_healthy`
condition has run against the stand-in images. The tests then read the
engine's own view (`docker inspect`, `docker port`) and compare it with the
Plan the files were rendered from. The last test takes the deployment down.
"""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid
from collections import Counter
from typing import Any

import pytest

from omnigen.plan.plan import Plan
from tests.e2e.conftest import Deployment

pytestmark = pytest.mark.e2e

Binding = tuple[str, str, int, int, str]  # service, host ip, host port, container port, protocol
MEBIBYTE = 1024 * 1024
# Host paths a container must never see (CIS Docker Benchmark 5.6, 5.32).
SENSITIVE_HOST_PATHS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr", "/var/run/docker.sock", "/run/docker.sock")


def containers(deployment: Deployment) -> list[dict[str, Any]]:
    names = deployment.compose("ps", "--all", "--quiet").split()
    assert names, "compose reports no containers"
    return deployment.engine.inspect(*names)


def service_of(container: dict[str, Any]) -> str:
    labels = container["Config"]["Labels"]
    return str(labels["com.docker.compose.service"])


def planned_bindings(plan: Plan) -> set[Binding]:
    return {
        (port.service, port.host_ip, port.host_start + offset, port.container_start + offset, port.protocol)
        for port in plan.all_published
        for offset in range(port.count)
    }


def memory_bytes(limit: str) -> int:
    assert limit.endswith("M"), f"the plan writes memory limits in MiB (got {limit})"
    return int(limit[:-1]) * MEBIBYTE


def test_every_service_is_running_and_healthy(deployment: Deployment) -> None:
    found = containers(deployment)
    services = set(deployment.compose("config", "--services").split())
    replicas = Counter(service_of(container) for container in found)
    expected = {service: 1 for service in services}
    expected["celery-worker"] = deployment.plan.workers["celery"]
    expected["dialer-worker"] = deployment.plan.workers["dialer"]
    assert dict(replicas) == expected
    unhealthy = {
        str(container["Name"]): container["State"]
        for container in found
        if container["State"]["Status"] != "running"
        or container["State"]["Health"]["Status"] != "healthy"
    }
    assert not unhealthy, f"not running and healthy: {unhealthy}\n{deployment.diagnostics()}"


def test_published_ports_are_exactly_the_planned_ones(deployment: Deployment) -> None:
    bound: set[Binding] = set()
    for container in containers(deployment):
        ports = container["NetworkSettings"]["Ports"] or {}
        for container_port, bindings in ports.items():
            number, protocol = container_port.split("/")
            for binding in bindings or ():
                bound.add((service_of(container), binding["HostIp"], int(binding["HostPort"]), int(number), protocol))
    planned = planned_bindings(deployment.plan)
    assert bound - planned == set(), "published but not planned"
    assert planned - bound == set(), "planned but not published"
    # `docker port` is what users run: the same set, every one on the planned host address only.
    asterisk = next(c for c in containers(deployment) if service_of(c) == "asterisk")
    listed = deployment.engine.docker("port", str(asterisk["Id"])).stdout.split("\n")
    rtp = deployment.plan.rtp
    bind_ip = deployment.plan.network.bind_ip
    assert f"{rtp.start}/udp -> {bind_ip}:{rtp.start}" in listed
    assert f"{rtp.end}/udp -> {bind_ip}:{rtp.end}" in listed
    assert len([line for line in listed if line]) == len({b for b in planned if b[0] == "asterisk"})
    assert all(line.endswith(tuple(f" -> {bind_ip}:{b[2]}" for b in planned)) for line in listed if line)


def test_published_web_port_serves_through_nginx(deployment: Deployment) -> None:
    nginx_http = next(port for port in deployment.plan.published["nginx"] if port.container_start == deployment.plan.listen["nginx-http"])
    with urllib.request.urlopen(f"http://{nginx_http.host_ip}:{nginx_http.host_start}/healthz", timeout=10) as response:
        assert response.status == 200
        assert response.read().strip() == b"ok"


def test_network_has_the_profile_subnet_and_asterisk_its_address(deployment: Deployment) -> None:
    network_name = f"{deployment.plan.project}_{deployment.plan.network.name}"
    network = deployment.engine.inspect(network_name)[0]
    subnets = [entry["Subnet"] for entry in network["IPAM"]["Config"]]
    assert subnets == [deployment.plan.network.subnet]
    asterisk = next(c for c in containers(deployment) if service_of(c) == "asterisk")
    attached = asterisk["NetworkSettings"]["Networks"]
    assert list(attached) == [network_name]
    assert attached[network_name]["IPAddress"] == deployment.plan.network.asterisk_ip


def forbidden_settings(container: dict[str, Any], deployment: Deployment, cgroupns_default: str) -> list[str]:
    """Every hazardous setting the engine applied to one container (empty when it is clean)."""
    host = container["HostConfig"]
    problems = []
    if host.get("Privileged"):
        problems.append("privileged")
    # Only what the plan gives back after cap_drop ALL (the frontend's root master; docs/application.md).
    service = str(container["Config"]["Labels"].get("com.docker.compose.service", ""))
    allowed = {f"CAP_{cap}" for cap in deployment.plan.cap_add.get(service, ())} | set(deployment.plan.cap_add.get(service, ()))
    if set(host.get("CapAdd") or ()) - allowed:
        problems.append(f"cap_add {host['CapAdd']}")
    if host.get("CapDrop") != ["ALL"]:
        problems.append(f"cap_drop {host.get('CapDrop')} instead of ALL")
    if "no-new-privileges:true" not in (host.get("SecurityOpt") or []):
        problems.append(f"security_opt {host.get('SecurityOpt')} lacks no-new-privileges")
    for namespace in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        mode = str(host.get(namespace) or "")
        if mode == "host" or mode.startswith("container:"):
            problems.append(f"{namespace} {mode}")
    # The cgroup namespace is the daemon's default unless compose asks (`cgroup:`): "host" on cgroup v1, "private" on v2.
    if host.get("CgroupnsMode") not in ("", None, cgroupns_default):
        problems.append(f"CgroupnsMode {host.get('CgroupnsMode')} instead of the daemon default {cgroupns_default}")
    # Absent keys are empty settings (the API omits them).
    if host.get("Sysctls"):
        problems.append(f"sysctls {host['Sysctls']}")
    if host.get("Devices"):
        problems.append(f"devices {host['Devices']}")
    for mount in container.get("Mounts") or []:
        if mount["Type"] != "bind":
            continue
        source = str(mount["Source"])
        if source in SENSITIVE_HOST_PATHS or source.endswith("docker.sock"):
            problems.append(f"bind mount of {source}")
        elif not source.startswith(str(deployment.folder.resolve()) + "/"):
            problems.append(f"bind mount {source} from outside the deployment folder")
    return problems


def test_containers_carry_no_forbidden_settings(deployment: Deployment) -> None:
    cgroup_version = deployment.engine.docker("info", "--format", "{{.CgroupVersion}}").stdout.strip()
    cgroupns_default = "private" if cgroup_version == "2" else "host"
    found = {str(c["Name"]): forbidden_settings(c, deployment, cgroupns_default) for c in containers(deployment)}
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_containers_have_the_planned_limits_and_users(deployment: Deployment) -> None:
    for container in containers(deployment):
        service = service_of(container)
        limits = deployment.plan.limits[service]
        host = container["HostConfig"]
        assert host["Memory"] == memory_bytes(limits.memory), service
        assert host["NanoCpus"] == round(float(limits.cpus) * 1e9), service
        assert host["PidsLimit"] == limits.pids, service
    users = {service_of(c): c["Config"]["User"] for c in containers(deployment)}
    assert users["postgresql"] == "postgres"
    assert users["redis"] == "redis"


def test_nginx_finds_the_certificate_pair_its_user_alone_can_read(deployment: Deployment) -> None:
    """The README's quick start (build as root, compose up): the pair nginx.conf names is there, and the key
    is readable by nginx's user (uid 101 in nginx-unprivileged) and by no other, even root without capabilities."""
    from omnigen.catalog.services import NGINX_UID

    nginx = next(c for c in containers(deployment) if service_of(c) == "nginx")
    tls = deployment.plan.tls
    for path in (tls.served_certificate, tls.served_key):
        readable = deployment.engine.docker("exec", "--user", f"{NGINX_UID}:{NGINX_UID}", str(nginx["Id"]), "test", "-s", path, "-a", "-r", path, check=False)
        assert readable.returncode == 0, f"{path} is missing or unreadable for uid {NGINX_UID}: {readable.stderr}"
    first = deployment.engine.docker("exec", "--user", f"{NGINX_UID}:{NGINX_UID}", str(nginx["Id"]), "head", "-n", "1", tls.served_key).stdout
    assert first.strip() == "-----BEGIN PRIVATE KEY-----"
    for other in ("102:102", "0:0"):  # cap_drop ALL: root has no CAP_DAC_OVERRIDE either
        denied = deployment.engine.docker("exec", "--user", other, str(nginx["Id"]), "cat", tls.served_key, check=False)
        assert denied.returncode != 0, f"uid {other} could read the private key"


def test_redis_is_healthy_only_because_its_health_check_authenticates(deployment: Deployment) -> None:
    """The stand-in enforces requirepass (read from stdin, as Redis does): healthy means the check sent the generated password."""
    redis = next(c for c in containers(deployment) if service_of(c) == "redis")
    port = str(deployment.plan.listen["redis"])
    with_password = deployment.engine.docker("exec", str(redis["Id"]), "redis-cli", "-p", port, "ping")
    without = deployment.engine.docker("exec", "--env", "REDISCLI_AUTH=", str(redis["Id"]), "redis-cli", "-p", port, "ping")
    assert with_password.stdout.strip() == "PONG"
    assert without.stdout.strip() == "NOAUTH Authentication required."
    # ...and the password is in no command line the engine keeps (docker inspect shows Cmd and Entrypoint).
    password = deployment.plan.env_map["REDIS_PASSWORD"]
    assert password not in " ".join([*(redis["Config"]["Cmd"] or []), *(redis["Config"]["Entrypoint"] or [])])


def received_by_asterisk(deployment: Deployment, payload: str, timeout: float = 15) -> str:
    asterisk = next(c for c in containers(deployment) if service_of(c) == "asterisk")
    deadline = time.monotonic() + timeout
    record = ""
    while time.monotonic() < deadline:
        result = deployment.engine.docker("exec", str(asterisk["Id"]), "cat", "/tmp/udp-received.log", check=False)
        record = result.stdout
        if payload in record:
            break
        time.sleep(0.5)
    return record


@pytest.mark.parametrize("edge", ["start", "end"])
def test_udp_to_a_published_rtp_port_reaches_asterisk(deployment: Deployment, edge: str) -> None:
    rtp = deployment.plan.rtp
    port = rtp.start if edge == "start" else rtp.end
    payload = f"omnigen-e2e-rtp-{port}-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(payload.encode(), (deployment.plan.network.bind_ip, port))
    record = received_by_asterisk(deployment, payload)
    assert f"udp {port} from " in record and payload in record, f"nothing arrived on {port}; the stand-in recorded:\n{record}"


def test_down_removes_containers_network_volumes_and_ports(deployment: Deployment) -> None:
    project = deployment.plan.project
    assert deployment.engine.proxy_pids(), "the deployment should hold docker-proxy processes before down"
    deployment.compose("down", "--volumes", "--timeout", "5")
    label = f"label=com.docker.compose.project={project}"
    engine = deployment.engine
    assert engine.docker("ps", "--all", "--quiet", "--filter", label).stdout.split() == []
    assert engine.docker("network", "ls", "--quiet", "--filter", label).stdout.split() == []
    assert engine.docker("volume", "ls", "--quiet", "--filter", label).stdout.split() == []
    assert engine.proxy_pids() == []
    # The web port is free again on the host.
    https = deployment.plan.published["nginx"][-1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((https.host_ip, https.host_start))
