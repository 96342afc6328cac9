"""firewall/nftables.conf: the real nft accepts it, and in network namespaces the test makes it lets
through exactly the published ports (an RTP probe inside the range arrives, one outside does not) and
SIP only from network.sip_allow. Docker's DNAT of published ports is played by one nft rule in the
"host" namespace; everything runs on veth pairs the test creates and removes.

nft comes from .ci/install-tls-firewall.sh; a missing one fails, never skips. Needs root (namespaces).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnigen.plan.firewall import table_name
from tests.conftest import run_cli

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
HOST_PUBLIC, CLIENT, ALLOWED_CLIENT = "192.0.2.1", "192.0.2.2", "198.51.100.7"
SUBNET, HOST_BRIDGE, ASTERISK = "10.22.22.0/24", "10.22.22.1", "10.22.22.10"

PROFILE = f"""\
schema_version = 2
[build]
prebuilt = true
[project]
name = "fwtest"
[network]
subnet = "{SUBNET}"
bind_ip = "{HOST_PUBLIC}"
sip_allow = ["198.51.100.0/24", "203.0.113.64/26"]
[capacity]
concurrent_calls = 5
[rtp]
start = 10000
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def tool(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with .ci/install-tls-firewall.sh")
    return found


def run(*argv: str, namespace: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [tool("ip"), "netns", "exec", namespace, *argv] if namespace else list(argv)
    return subprocess.run(command, capture_output=True, text=True, input=stdin, timeout=30, check=False)


def must(*argv: str, namespace: str | None = None) -> None:
    result = run(*argv, namespace=namespace)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fw")
    (folder / "fwtest.toml").write_text(PROFILE)
    result = run_cli("build", str(folder / "fwtest.toml"), "-o", str(folder / "out"))
    assert result.returncode == 0, result.stderr
    return folder / "out" / "firewall" / "nftables.conf"


@needs_root
def test_nft_accepts_the_generated_file(built: Path) -> None:
    namespace = f"omnigen-nftc-{uuid.uuid4().hex[:8]}"
    must(tool("ip"), "netns", "add", namespace)
    try:
        checked = run(tool("nft"), "-c", "-f", str(built), namespace=namespace)
        assert checked.returncode == 0, checked.stderr
        broken = built.with_name("broken.conf")
        broken.write_text(built.read_text().replace("accept\n", "acept\n", 1))
        assert run(tool("nft"), "-c", "-f", str(broken), namespace=namespace).returncode != 0
    finally:
        run(tool("ip"), "netns", "del", namespace)


def test_the_file_opens_exactly_the_published_ports(built: Path) -> None:
    text = built.read_text()
    rules = [line.strip() for line in text.splitlines() if line.strip().startswith("meta l4proto")]
    assert rules == [
        f"meta l4proto udp ct original ip daddr {HOST_PUBLIC} ct original proto-dst 5060 ip saddr @sip_allow accept",
        f"meta l4proto tcp ct original ip daddr {HOST_PUBLIC} ct original proto-dst 5060 ip saddr @sip_allow accept",
        f"meta l4proto udp ct original ip daddr {HOST_PUBLIC} ct original proto-dst 10000-10027 accept",
        f"meta l4proto tcp ct original ip daddr {HOST_PUBLIC} ct original proto-dst 80 accept",
        f"meta l4proto tcp ct original ip daddr {HOST_PUBLIC} ct original proto-dst 443 accept",
    ]
    assert "elements = { 198.51.100.0/24, 203.0.113.64/26 }" in text
    assert f"table inet {table_name('fwtest')} {{" in text


# A UDP listener in the "container": prints every datagram it receives as "PORT PAYLOAD".
LISTENER = """
import select, socket, sys
ports = [int(p) for p in sys.argv[1:]]
socks = []
for port in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    socks.append(s)
print("ready", flush=True)
while True:
    ready, _, _ = select.select(socks, [], [], 5)
    if not ready:
        break
    for s in ready:
        data, peer = s.recvfrom(2048)
        print(s.getsockname()[1], data.decode(), peer[0], flush=True)
"""

SENDER = """
import socket, sys
source, target = sys.argv[1], sys.argv[2]
for port in sys.argv[3:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    for _ in range(3):
        s.sendto(f"probe-{port}".encode(), (target, int(port)))
"""


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    names = {"host": f"omnigen-fw-h{tag}", "client": f"omnigen-fw-c{tag}", "container": f"omnigen-fw-a{tag}"}
    ip = tool("ip")
    created: list[str] = []
    try:
        for name in names.values():
            must(ip, "netns", "add", name)
            created.append(name)
        host, client, container = names["host"], names["client"], names["container"]
        # client <-> host's public side; host's bridge side <-> the "container" on the compose subnet.
        must(ip, "link", "add", f"c{tag}", "netns", client, "type", "veth", "peer", "name", f"hc{tag}", "netns", host)
        must(ip, "link", "add", f"a{tag}", "netns", container, "type", "veth", "peer", "name", f"ha{tag}", "netns", host)
        for namespace, device, address in (
            (client, f"c{tag}", f"{CLIENT}/24"), (host, f"hc{tag}", f"{HOST_PUBLIC}/24"),
            (container, f"a{tag}", f"{ASTERISK}/24"), (host, f"ha{tag}", f"{HOST_BRIDGE}/24"),
        ):  # fmt: skip
            must(ip, "addr", "add", address, "dev", device, namespace=namespace)
            must(ip, "link", "set", device, "up", namespace=namespace)
            must(ip, "link", "set", "lo", "up", namespace=namespace)
        must(ip, "addr", "add", f"{ALLOWED_CLIENT}/32", "dev", f"c{tag}", namespace=client)
        must(ip, "route", "add", "default", "via", HOST_BRIDGE, namespace=container)
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", f"net.ipv4.conf.hc{tag}.rp_filter=0"):
            must(tool("sysctl"), "-q", "-w", key, namespace=host)
        yield names
    finally:
        for name in created:
            run(ip, "netns", "del", name)


# What dockerd does for the published ports, widened on purpose: it forwards a larger UDP range, so only
# the generated rules can keep the ports outside the published range from reaching the container.
DOCKER_LIKE_DNAT = f"""
table ip dockerlike {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {HOST_PUBLIC} udp dport {{ 5060, 9990-10300 }} dnat to {ASTERISK}
    }}
}}
"""


@needs_root
def test_in_a_namespace_only_the_published_range_and_allowed_sip_get_through(built: Path, namespaces: dict[str, str]) -> None:
    host, client, container = namespaces["host"], namespaces["client"], namespaces["container"]
    nft = tool("nft")
    loaded = run(nft, "-f", "-", namespace=host, stdin=DOCKER_LIKE_DNAT)
    assert loaded.returncode == 0, loaded.stderr
    applied = run(nft, "-f", str(built), namespace=host)
    assert applied.returncode == 0, applied.stderr
    inside, outside, below, sip = "10010", "10100", "9995", "5060"
    listener = subprocess.Popen(
        [tool("ip"), "netns", "exec", container, tool("python3"), "-c", LISTENER, inside, outside, below, sip],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        for source, ports in ((CLIENT, (inside, outside, below, sip)), (ALLOWED_CLIENT, (sip,))):
            sent = run(tool("python3"), "-c", SENDER, source, HOST_PUBLIC, *ports, namespace=client)
            assert sent.returncode == 0, sent.stderr
        out, _ = listener.communicate(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    received = {tuple(line.split()[::2]) for line in out.splitlines()}  # (port, source)
    assert (inside, CLIENT) in received, out
    assert (sip, ALLOWED_CLIENT) in received, out
    assert (outside, CLIENT) not in received and (below, CLIENT) not in received, out
    assert (sip, CLIENT) not in received, out
    # The drops are counted by the table's last rule.
    counters = run(nft, "list", "chain", "inet", table_name("fwtest"), "published", namespace=host).stdout
    assert "counter packets 0 " not in counters, counters


def test_explain_lists_the_openings_and_the_forwards_toward_the_lan_address(tmp_path: Path) -> None:
    """ipvlan: SIP and RTP are not published, yet the firewall in front must open them toward network.lan.address."""
    profile = tmp_path / "lan.toml"
    profile.write_text(
        'schema_version = 2\n[build]\nprebuilt = true\n[project]\nname = "lan"\n[host]\nkind = "bare-metal"\n[network]\nmode = "ipvlan"\n'
        'public_ip = "198.51.100.21"\nbind_ip = "192.168.10.5"\nsip_allow = ["203.0.113.0/24"]\n'
        '[network.lan]\nparent = "eth0"\nsubnet = "192.168.10.0/24"\ngateway = "192.168.10.1"\naddress = "192.168.10.21"\n'
        "[capacity]\nconcurrent_calls = 20\n"
    )
    result = run_cli("explain", str(profile), "--format", "json")
    assert result.returncode == 0, result.stderr
    import json

    firewall = json.loads(result.stdout)["firewall"]
    openings = {(row["protocol"], row["ports"], row["address"], row["from"]) for row in firewall["openings"]}
    assert ("udp", "5060", "192.168.10.21", "network.sip_allow") in openings
    assert ("udp", "10000-10101", "192.168.10.21", "anywhere") in openings
    assert ("tcp", "443", "192.168.10.5", "anywhere") in openings
    forwards = {(row["protocol"], row["ports"], row["public_ip"], row["target"]) for row in firewall["forwards"]}
    assert ("udp", "10000-10101", "198.51.100.21", "192.168.10.21") in forwards
    assert ("tcp", "80", "198.51.100.21", "192.168.10.5") in forwards
    warnings = json.loads(result.stdout)["warnings"]
    assert any(row["key"] == "network.sip_allow" and "cannot limit it" in row["message"] for row in warnings)
    built = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    # Nothing of Asterisk is published, so the host's rules hold only nginx's ports.
    rules = [line for line in (tmp_path / "out" / "firewall" / "nftables.conf").read_text().splitlines() if "meta l4proto" in line]
    assert built.returncode == 0 and len(rules) == 2 and all("proto-dst 80 " in rule or "proto-dst 443 " in rule for rule in rules)
