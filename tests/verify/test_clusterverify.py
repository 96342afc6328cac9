"""The multi-host verify stage catches what no single file shows: each tampered copy of a real
build must be refused (VerifyError, exit 3) with a message that says where."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest

from omnigen.errors import VerifyError
from omnigen.pipeline import Compiled
from omnigen.plan.plan import Plan
from omnigen.render import render
from omnigen.verify import verify
from tests.conftest import ROOT, compile_example

Files = dict[str, str]


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_example(ROOT / "profiles" / "multi-host-4.toml")


def _replace(name: str, old: str, new: str, count: int = 1) -> Callable[[Files], Files]:
    def tamper(files: Files) -> Files:
        assert files[name].count(old) >= 1, f"{old!r} is not in {name}"
        return {**files, name: files[name].replace(old, new, count)}

    return tamper


def test_the_untouched_build_verifies(compiled: Compiled) -> None:
    assert set(verify(compiled.plan, dict(compiled.files)).services) == {service.name for service in compiled.plan.cluster.services}  # type: ignore[union-attr]


CASES: list[tuple[str, Callable[[Files], Files], str]] = [
    (
        "rtp.conf of one voice host no longer matches its published range",
        _replace("hosts/voice2/asterisk/rtp.conf", "rtpend=23007", "rtpend=23005"),
        "the Asterisk RTP range differs between files",
    ),
    (
        "a bundle's .env moves the voice host's range",
        _replace("hosts/voice1/.env", 'ACD_RTP_PORT_MAX="21007"', 'ACD_RTP_PORT_MAX="21001"'),
        "hosts/voice1/.env: does not read back as planned: ACD_RTP_PORT_MAX",
    ),
    (
        "a client is pointed at a host that does not run the service",
        lambda files: {
            **files,
            "hosts/app1/.env": files["hosts/app1/.env"].replace('POSTGRES_HOSTNAME="192.168.50.11"', 'POSTGRES_HOSTNAME="192.168.50.21"'),
        },
        "POSTGRES_HOSTNAME",
    ),
    (
        "the voice host stops publishing what a peer uses",
        _replace("hosts/voice1/docker-compose.yml", '      - "192.168.50.21:5038:5038/tcp"\n', ""),
        "hosts/voice1/docker-compose.yml: asterisk publishes",
    ),
    (
        "the data host publishes PostgreSQL beyond its private address",
        _replace("hosts/data1/docker-compose.yml", '"192.168.50.11:5432:5432/tcp"', '"0.0.0.0:5432:5432/tcp"'),
        "(OV110)",
    ),
    (
        "a stack Asterisk publishes one RTP port through the routing mesh",
        _replace("stack.yml", '{target: 22000, published: 22000, protocol: "udp", mode: "host"}', '{target: 22000, published: 22000, protocol: "udp"}'),
        "(OV109)",
    ),
    (
        "a stack service is pinned to another host",
        _replace("stack.yml", '"node.labels.omnivoip.host.data1 == true"', '"node.labels.omnivoip.host.app1 == true"'),
        "is constrained to",
    ),
    (
        "label-nodes.sh forgets a role label",
        _replace("label-nodes.sh", "' omnivoip.role.voice omnivoip.host.voice2'", "' omnivoip.host.voice2'"),
        "label-nodes.sh: labels voice2",
    ),
    (
        "a stack service drifts from its bundle twin",
        _replace("stack.yml", '        - "/tmp/celerybeat.pid"\n      interval: "30s"', '        - "/tmp/beat.pid"\n      interval: "30s"'),
        "celery-beat.healthcheck",
    ),
    (
        "two voice hosts advertise one address with the same SIP port",
        lambda files: {
            **files,
            "hosts/voice2/asterisk/pjsip.conf": files["hosts/voice2/asterisk/pjsip.conf"].replace("5062", "5060"),
        },
        "(OV215)",
    ),
    (
        "the stack's .env holds a variable nothing reads",
        _replace(".env", "# General\n", "# General\nLEFTOVER='x'\n"),
        ".env: holds variables nothing reads: LEFTOVER",
    ),
    (
        "a stack service uses a virtual IP",
        _replace("stack.yml", 'endpoint_mode: "dnsrr"', 'endpoint_mode: "vip"'),
        "has endpoint_mode vip",
    ),
    (
        "deploy-stack.sh deploys another stack",
        _replace("deploy-stack.sh", "--compose-file stack.yml acme-quad", "--compose-file stack.yml other"),
        "deploy-stack.sh: does not run",
    ),
    (
        "a Swarm config points at another host's rtp.conf",
        _replace("stack.yml", '"./hosts/voice2/asterisk/rtp.conf"', '"./hosts/voice1/asterisk/rtp.conf"'),
        "asterisk-voice2-rtp",
    ),
]


@pytest.mark.parametrize(("tamper", "said"), [(tamper, said) for _, tamper, said in CASES], ids=[name for name, _, _ in CASES])
def test_a_tampered_build_is_refused(compiled: Compiled, tamper: Callable[[Files], Files], said: str) -> None:
    with pytest.raises(VerifyError) as caught:
        verify(compiled.plan, tamper(dict(compiled.files)))
    rendered = caught.value.render()
    assert said in rendered, rendered
    assert re.search(r"nothing was written", rendered)


def _with_host_plan(compiled: Compiled, host: str, change: Callable[[Plan], Plan]) -> Plan:
    """The plan with one host's bundle plan changed, as a plan bug would change it."""
    cluster = compiled.plan.cluster
    assert cluster is not None
    hosts = tuple(replace(bundle, plan=change(bundle.plan)) if bundle.name == host else bundle for bundle in cluster.hosts)
    return replace(compiled.plan, cluster=replace(cluster, hosts=hosts))


def _set_env(plan: Plan, key: str, value: str) -> Plan:
    sections = tuple(replace(section, variables=tuple(replace(var, value=value) if var.key == key else var for var in section.variables)) for section in plan.env)
    return replace(plan, env=sections)


def test_a_plan_that_sends_a_client_to_the_wrong_host_is_refused(compiled: Compiled) -> None:
    """Files rendered consistently from a wrong plan: only the cross-host resolution check can see it."""
    wrong = _with_host_plan(compiled, "app1", lambda plan: _set_env(plan, "POSTGRES_HOSTNAME", "192.168.50.21"))
    with pytest.raises(VerifyError) as caught:
        verify(wrong, render(wrong))
    assert "hosts/app1: celery-worker is told POSTGRES_HOST -> 192.168.50.21:5432, but hosts/voice1 publishes nothing there on 192.168.50.21" in caught.value.render()


def test_a_plan_that_forgets_to_publish_for_a_peer_is_refused(compiled: Compiled) -> None:
    def unpublish(plan: Plan) -> Plan:
        kept = {service: tuple(port for port in ports if port.host_start != 5038) for service, ports in plan.published.items()}
        return replace(plan, published=kept)

    wrong = _with_host_plan(compiled, "voice1", unpublish)
    with pytest.raises(VerifyError) as caught:
        verify(wrong, render(wrong))
    assert "hosts/app1: dialer-api is told ASTERISK_AMI_HOST -> 192.168.50.21:5038, but hosts/voice1 publishes nothing there" in caught.value.render()


def test_a_plan_whose_stack_range_differs_from_the_bundle_is_refused(compiled: Compiled) -> None:
    cluster = compiled.plan.cluster
    assert cluster is not None
    voice = tuple(replace(item, rtp=replace(item.rtp, end=item.rtp.end - 2)) if item.host == "voice2" else item for item in cluster.voice)
    wrong = replace(compiled.plan, cluster=replace(cluster, voice=voice))
    with pytest.raises(VerifyError) as caught:
        verify(wrong, render(wrong))
    rendered = caught.value.render()
    # The stack's Asterisk now disagrees with the rtp.conf it shares with the bundle (OV201), and the
    # cross-host check names every place the range is stated.
    assert "the Asterisk RTP range differs between files" in rendered
    assert "voice2: the RTP range is not 22000-23005 everywhere" in rendered
    assert "hosts/voice2/docker-compose.yml ports 22000-23007" in rendered
