"""A multi-host build on a real single-node Docker Swarm: it deploys, places and publishes exactly the plan.

The private engine of the end-to-end tier becomes a one-node swarm (`docker swarm
init --advertise-addr 127.0.0.1`). The generated label-nodes.sh gives that node every
role and every host label, the generated deploy-stack.sh deploys stack.yml with the
stand-in images, and every service must reach its replicas (Swarm counts a task only
once its healthcheck passes). The tests then read `docker service inspect` and the
task containers and compare them with the Plan. The last test removes the stack and
leaves the swarm; the engine fixture stops the daemon by its pid.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from omnigen.inputs.profile import load_secrets, secrets_path_for
from omnigen.loading import load_profile
from omnigen.pipeline import compile_profile
from omnigen.plan.plan import ClusterPlan, Plan
from tests.conftest import run_cli
from tests.e2e.engine import DockerEngine
from tests.e2e.standins import build_standins
from tests.e2e.swarm_profile import SWARM_PROFILE

pytestmark = pytest.mark.e2e

CONVERGE_TIMEOUT_SECONDS = 300
MEBIBYTE = 1024 * 1024


@dataclass(frozen=True)
class Stack:
    engine: DockerEngine
    folder: Path
    plan: Plan
    node: str

    @property
    def cluster(self) -> ClusterPlan:
        assert self.plan.cluster is not None
        return self.plan.cluster

    @property
    def name(self) -> str:
        return self.cluster.stack_name

    def script(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a generated script as a user would, with the docker CLI bound to the private engine."""
        return subprocess.run(["sh", str(self.folder / name), *args], capture_output=True, text=True, env=self.engine.env(), timeout=timeout, check=False)

    def service(self, name: str) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(self.engine.docker("service", "inspect", f"{self.name}_{name}").stdout)
        return inspected[0]

    def replicas(self) -> dict[str, tuple[int, int]]:
        """service -> (running, desired), as `docker service ls` counts them."""
        listed = self.engine.docker("service", "ls", "--filter", f"label=com.docker.stack.namespace={self.name}", "--format", "{{.Name}} {{.Replicas}}").stdout
        found = {}
        for line in listed.split("\n"):
            if line.strip():
                name, counts = line.split()[:2]
                running, desired = counts.split("/")
                found[name.removeprefix(f"{self.name}_")] = (int(running), int(desired))
        return found

    def containers(self, service: str) -> list[dict[str, Any]]:
        ids = self.engine.docker("ps", "--quiet", "--filter", f"label=com.docker.swarm.service.name={self.name}_{service}").stdout.split()
        return self.engine.inspect(*ids) if ids else []

    def diagnostics(self) -> str:
        names = [f"{self.name}_{service.name}" for service in self.cluster.services]
        tasks = self.engine.docker("service", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", *names, check=False)
        return f"{tasks.stdout[-6000:]}{tasks.stderr[-2000:]}"


def _remove_stack(engine: DockerEngine, name: str) -> None:
    engine.docker("stack", "rm", name, check=False)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        left = engine.docker("ps", "--all", "--quiet", "--filter", f"label=com.docker.stack.namespace={name}", check=False).stdout.split()
        networks = engine.docker("network", "ls", "--quiet", "--filter", f"label=com.docker.stack.namespace={name}", check=False).stdout.split()
        if not left and not networks:
            return
        time.sleep(1)


@pytest.fixture(scope="module")
def stack(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("swarm")
    profile = folder / "omnivoip.toml"
    profile.write_text(SWARM_PROFILE)
    out = folder / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, f"omnigen build failed:\n{built.stderr}"
    compiled = compile_profile(load_profile(profile, {}), load_secrets(secrets_path_for(profile)))
    assert (out / "stack.yml").read_text() == compiled.files["stack.yml"]
    build_standins(engine, compiled.plan)
    # Swarm needs the pair to create nginx's config and secret: build writes it (tls.mode self-signed).
    assert (out / "certs" / "fullchain.pem").is_file() and (out / "certs" / "privkey.pem").is_file()
    engine.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        node = engine.docker("node", "ls", "--quiet").stdout.strip()
        deployed = Stack(engine, out, compiled.plan, node)
        labelled = deployed.script("label-nodes.sh", *(f"{host.name}={node}" for host in deployed.cluster.hosts))
        assert labelled.returncode == 0, labelled.stderr
        # No registry is reachable: the stand-ins are local images, so no digest lookup.
        started = deployed.script("deploy-stack.sh", "--resolve-image", "never")
        assert started.returncode == 0, started.stdout + started.stderr
        deadline = time.monotonic() + CONVERGE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            counts = deployed.replicas()
            if len(counts) == len(deployed.cluster.services) and all(running == desired for running, desired in counts.values()):
                break
            time.sleep(3)
        else:
            pytest.fail(f"the stack did not converge in {CONVERGE_TIMEOUT_SECONDS} s: {deployed.replicas()}\n{deployed.diagnostics()}")
        yield deployed
    finally:
        # Also on failure: no services, configs, networks or ports left, and no swarm.
        _remove_stack(engine, compiled.plan.cluster.stack_name if compiled.plan.cluster else "")
        engine.docker("swarm", "leave", "--force", check=False)


def test_label_nodes_gave_the_node_every_role_and_every_host_label(stack: Stack) -> None:
    labels = json.loads(stack.engine.docker("node", "inspect", "--format", "{{json .Spec.Labels}}", stack.node).stdout)
    expected = {label: "true" for host in stack.cluster.hosts for label in host.labels}
    assert labels == expected
    assert {"omnivoip.role.data", "omnivoip.role.web", "omnivoip.role.edge", "omnivoip.role.voice", "omnivoip.host.voice2"} <= set(labels)


def test_every_service_reaches_its_replicas(stack: Stack) -> None:
    expected = {service.name: (service.replicas, service.replicas) for service in stack.cluster.services}
    assert stack.replicas() == expected
    for service in stack.cluster.services:
        running = stack.containers(service.name)
        assert len(running) == service.replicas, service.name
        assert all(container["State"]["Health"]["Status"] == "healthy" for container in running), service.name


def test_service_inspect_shows_the_planned_ports_in_host_mode_and_placement(stack: Stack) -> None:
    for service in stack.cluster.services:
        inspected = stack.service(service.name)
        ports = {(port["Protocol"], port["TargetPort"], port["PublishedPort"], port["PublishMode"]) for port in inspected["Endpoint"].get("Ports") or []}
        assert ports == {(port.protocol, port.target, port.published, "host") for port in service.ports}, service.name
        assert inspected["Spec"]["EndpointSpec"]["Mode"] == stack.cluster.endpoint_mode
        assert inspected["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == list(service.constraints)
    voice2 = next(voice for voice in stack.cluster.voice if voice.host == "voice2")
    published = {port["PublishedPort"] for port in stack.service(voice2.service)["Endpoint"]["Ports"]}
    assert {voice2.sip_port, voice2.rtp.start, voice2.rtp.end} <= published


def test_services_run_with_the_planned_limits_and_no_forbidden_settings(stack: Stack) -> None:
    for service in stack.cluster.services:
        task = stack.service(service.name)["Spec"]["TaskTemplate"]
        limits = task["Resources"]["Limits"]
        assert limits["MemoryBytes"] == int(service.limits.memory.removesuffix("M")) * MEBIBYTE, service.name
        assert limits["NanoCPUs"] == round(float(service.limits.cpus) * 1e9), service.name
        assert limits["Pids"] == service.limits.pids, service.name
        # Only what the plan gives back after cap_drop ALL (the frontend's root master; docs/application.md).
        given_back = sorted(f"CAP_{cap}" for cap in stack.plan.cap_add.get(service.base, ()))
        assert task["ContainerSpec"].get("CapabilityDrop") == ["ALL"], service.name
        assert sorted(task["ContainerSpec"].get("CapabilityAdd") or ()) == given_back, service.name
        for container in stack.containers(service.name):
            host = container["HostConfig"]
            assert not host.get("Privileged") and not host.get("Sysctls") and not host.get("Devices")
            assert sorted(host.get("CapAdd") or ()) == given_back, service.name
            assert host.get("CapDrop") == ["ALL"]
            for namespace in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode"):
                assert str(host.get(namespace) or "") != "host", (service.name, namespace)
            # Configs, secrets and named volumes only: nothing of the host's filesystem.
            assert all(mount["Type"] in ("volume",) for mount in container.get("Mounts") or []), container.get("Mounts")


def test_the_asterisks_read_their_own_configs(stack: Stack) -> None:
    for voice in stack.cluster.voice:
        (container,) = stack.containers(voice.service)
        rtp_conf = stack.engine.docker("exec", str(container["Id"]), "cat", "/etc/asterisk/rtp.conf").stdout
        pjsip = stack.engine.docker("exec", str(container["Id"]), "cat", "/etc/asterisk/pjsip.conf").stdout
        assert rtp_conf == (stack.folder / "hosts" / voice.host / "asterisk" / "rtp.conf").read_text()
        assert f"rtpstart={voice.rtp.start}\n" in rtp_conf and f"external_media_address={voice.advertised_ip}\n" in pjsip


def _received(stack: Stack, service: str, payload: str, timeout: float = 15) -> str:
    (container,) = stack.containers(service)
    deadline = time.monotonic() + timeout
    record = ""
    while time.monotonic() < deadline:
        record = stack.engine.docker("exec", str(container["Id"]), "cat", "/tmp/udp-received.log", check=False).stdout
        if payload in record:
            break
        time.sleep(0.5)
    return record


def test_media_sent_to_each_voice_hosts_range_reaches_its_own_asterisk(stack: Stack) -> None:
    voice1, voice2 = stack.cluster.voice
    for target, other in ((voice1, voice2), (voice2, voice1)):
        for port in (target.rtp.start, target.rtp.end):
            payload = f"omnigen-swarm-rtp-{port}-{uuid.uuid4().hex}"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(payload.encode(), ("127.0.0.1", port))
            record = _received(stack, target.service, payload)
            assert f"udp {port} from " in record and payload in record, f"nothing arrived on {port} at {target.service}:\n{record}"
            assert payload not in _received(stack, other.service, payload, timeout=1)


def test_the_web_entry_answers_on_its_published_port(stack: Stack) -> None:
    http = next(port for port in stack.cluster.service("nginx").ports if port.target == stack.plan.listen["nginx-http"])
    with urllib.request.urlopen(f"http://127.0.0.1:{http.published}/healthz", timeout=10) as response:
        assert response.status == 200


def test_host_mode_ports_cost_two_docker_proxies_each(stack: Stack) -> None:
    """What costs.py assumes for ports without an address (IPv4 + IPv6), on Swarm's host-mode ports too."""
    ports = sum(len(service.ports) for service in stack.cluster.services)
    assert len(stack.engine.proxy_pids()) == 2 * ports


def test_label_nodes_says_which_host_no_node_has(stack: Stack) -> None:
    result = stack.script("label-nodes.sh")
    assert result.returncode == 1
    first = stack.cluster.hosts[0]
    assert f"no node has the address {first.address} of {first.name}; join it with --advertise-addr {first.address}" in result.stderr


def test_stack_rm_and_swarm_leave_leave_nothing_behind(stack: Stack) -> None:
    engine = stack.engine
    _remove_stack(engine, stack.name)
    label = f"label=com.docker.stack.namespace={stack.name}"
    assert engine.docker("service", "ls", "--quiet", "--filter", label).stdout.split() == []
    assert engine.docker("config", "ls", "--quiet", "--filter", label).stdout.split() == []
    assert engine.docker("secret", "ls", "--quiet", "--filter", label).stdout.split() == []
    assert engine.docker("ps", "--all", "--quiet", "--filter", label).stdout.split() == []
    deadline = time.monotonic() + 30
    while engine.proxy_pids() and time.monotonic() < deadline:
        time.sleep(1)
    assert engine.proxy_pids() == []
    engine.docker("swarm", "leave", "--force")
    assert engine.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "inactive"
