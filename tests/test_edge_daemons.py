"""The real Debian daemons judge the generated WebRTC edge (profiles/webrtc.toml).

- `kamailio -c -f` on kamailio.cfg exactly as generated (only the dispatcher
  list path points into the test folder).
- rtpengine and Kamailio started in the foreground, unprivileged and without
  capabilities (as cap_drop ALL leaves them), with the generated configs and
  compose commands; only addresses are adapted: each container address becomes
  its own loopback address, so nothing here leaves the machine.
- A browser softphone (tests/sipws.py) registers over WebSocket with
  auth_ephemeral credentials and calls both ways through the dispatcher
  address, with rtpengine rewriting SDP for each side.
- `nginx -t` on nginx.conf with upstream names resolved to loopback addresses
  and the certificate/temp paths pointed into the test folder (nginx resolves
  upstream names and opens the certificate when it checks a config).

The daemons come from .ci/install-daemons.sh (run by `make test` as root); without root
a missing one skips with the reason, and in CI it fails.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnigen.formats.kamailiocfg import parse_kamailio_cfg
from omnigen.formats.nginxconf import parse_nginx
from omnigen.inputs.profile import Secrets
from omnigen.pipeline import Compiled
from omnigen.plan.plan import WebrtcPlan
from tests.conftest import ROOT, compile_example, missing_tool
from tests.daemons import Daemon
from tests.sipws import (
    ASTERISK_SDP,
    BROWSER_SDP,
    Browser,
    SipMessage,
    WebSocket,
    ephemeral_credentials,
    ng_command,
    sdp_media,
    wait_for_ng,
)

PROFILE = ROOT / "profiles" / "webrtc.toml"
SECRET = "edge-test-secret-9f8e7d6c5b4a"
SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_HINT = "install it with .ci/install-daemons.sh"


def daemon(name: str) -> str:
    found = shutil.which(name, path=f"{SEARCH_PATH}:{os.environ.get('PATH', '')}")
    if found is None:
        missing_tool(f"{name} is not installed; {INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_example(PROFILE)


@pytest.fixture(scope="module")
def webrtc(compiled: Compiled) -> WebrtcPlan:
    assert compiled.plan.webrtc is not None, "profiles/webrtc.toml must enable components.webrtc"
    return compiled.plan.webrtc


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """World-readable, so the daemons can read it after dropping to nobody."""
    path = Path(tempfile.mkdtemp(prefix="omnigen-edge-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path


# --- Address adaptation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Loopback:
    """Each container address of the plan mapped to its own loopback address.

    The second and third octets come from the process id, so two test runs on
    one machine do not collide; ports are never changed.
    """

    base: str

    @classmethod
    def for_this_run(cls) -> Loopback:
        pid = os.getpid()
        return cls(f"127.{pid % 250 + 1}.{pid // 250 % 250 + 1}")

    def address(self, host: int) -> str:
        return f"{self.base}.{host}"

    def mapping(self, plan: WebrtcPlan, asterisk_ip: str) -> dict[str, str]:
        return {
            asterisk_ip: self.address(10),
            plan.kamailio_ip: self.address(11),
            plan.rtpengine_ip: self.address(12),
            "127.0.0.1": self.address(1),  # the containers' own loopback (healthcheck sockets)
        }


IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


def adapt(text: str, mapping: dict[str, str]) -> str:
    return IPV4.sub(lambda match: mapping.get(match.group(1), match.group(1)), text)


@pytest.fixture(scope="module")
def loopback() -> Loopback:
    return Loopback.for_this_run()


@pytest.fixture(scope="module")
def mapping(loopback: Loopback, compiled: Compiled, webrtc: WebrtcPlan) -> dict[str, str]:
    return loopback.mapping(webrtc, compiled.plan.network.asterisk_ip)


def kamailio_cfg_for(folder: Path, compiled: Compiled, webrtc: WebrtcPlan, mapping: dict[str, str] | None) -> Path:
    dispatcher = compiled.files["kamailio/dispatcher.list"]
    if mapping:
        dispatcher = adapt(dispatcher, mapping)
    listed = _write(folder / "dispatcher.list", dispatcher)
    text = compiled.files["kamailio/kamailio.cfg"]
    assert f'"{webrtc.dispatcher_list}"' in text
    text = text.replace(f'"{webrtc.dispatcher_list}"', f'"{listed}"')
    if mapping:
        text = adapt(text, mapping)
    return _write(folder / ("kamailio-loopback.cfg" if mapping else "kamailio.cfg"), text)


def unprivileged(command: list[str]) -> list[str]:
    """As the containers run it: no capabilities at all (cap_drop ALL), no new privileges."""
    if os.geteuid() != 0:
        return command
    return [
        daemon("setpriv"),
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        *command,
    ]


# --- kamailio -c ----------------------------------------------------------------------------------


def kamailio_check(config: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": SEARCH_PATH, "WEBRTC_AUTH_SECRET": SECRET}
    return subprocess.run([daemon("kamailio"), "-c", "-f", str(config)], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_kamailio_accepts_the_generated_config(folder: Path, compiled: Compiled, webrtc: WebrtcPlan) -> None:
    result = kamailio_check(kamailio_cfg_for(folder, compiled, webrtc, None))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "config file ok" in output
    # The sockets Kamailio reports are the plan's: its own address, advertising the public address and nginx's HTTPS port.
    assert f"udp: {webrtc.kamailio_ip} [{webrtc.kamailio_ip}]:{webrtc.sip_port}" in output
    assert (
        f"tcp: {webrtc.kamailio_ip} [{webrtc.kamailio_ip}]:{webrtc.ws_port} advertise {webrtc.advertised_ip}:{webrtc.advertised_port}"
        in output
    )
    assert SECRET not in output, "the auth_ephemeral secret must not be logged"


def test_kamailio_accepts_the_config_of_a_profile_without_a_domain(folder: Path, tmp_path: Path) -> None:
    """No alias line, a non-default HTTPS port advertised: still a config Kamailio accepts."""
    profile = tmp_path / "bare.toml"
    profile.write_text(
        'schema_version = 2\n[project]\nname = "bare"\n[network]\nbind_ip = "192.0.2.7"\n'
        "[ports]\nhttps = 8443\n[capacity]\nconcurrent_calls = 5\n[components]\nwebrtc = true\n"
    )
    compiled = compile_example(profile)
    assert compiled.plan.webrtc is not None and compiled.plan.webrtc.domain is None
    result = kamailio_check(kamailio_cfg_for(folder, compiled, compiled.plan.webrtc, None))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "advertise 192.0.2.7:8443" in output
    assert "alias" not in compiled.files["kamailio/kamailio.cfg"].split("####### Modules")[0].replace("auto_aliases", "")


def test_kamailio_check_fails_on_a_broken_config(folder: Path, compiled: Compiled, webrtc: WebrtcPlan) -> None:
    """The judge can say no: without the websocket module, ws_handle_handshake() is unknown."""
    config = kamailio_cfg_for(folder, compiled, webrtc, None)
    broken = _write(folder / "broken.cfg", config.read_text().replace('loadmodule "websocket.so"\n', ""))
    result = kamailio_check(broken)
    assert result.returncode != 0
    assert "ws_handle_handshake" in result.stdout + result.stderr


def test_kamailio_check_fails_without_the_secret(folder: Path, compiled: Compiled, webrtc: WebrtcPlan) -> None:
    config = kamailio_cfg_for(folder, compiled, webrtc, None)
    result = subprocess.run(
        [daemon("kamailio"), "-c", "-f", str(config)], capture_output=True, text=True, env={"PATH": SEARCH_PATH}, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "WEBRTC_AUTH_SECRET" in result.stdout + result.stderr


# --- rtpengine and Kamailio running ---------------------------------------------------------------


def start(command: list[str], log: Path, env: dict[str, str]) -> Daemon:
    handle = log.open("wb")
    process = subprocess.Popen(unprivileged(command), stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    handle.close()
    return Daemon(process, log)


def _run_command(command: tuple[str, ...], config_from: str, config_to: Path) -> list[str]:
    """The compose `command:` with the config path pointed at the test's copy."""
    adapted = [part.replace(config_from, str(config_to)) for part in command]
    assert adapted != list(command), f"{config_from} is not in {command}"
    return [daemon(adapted[0]), *adapted[1:]]


@dataclass
class Edge:
    rtpengine: Daemon
    kamailio: Daemon
    mapping: dict[str, str]
    webrtc: WebrtcPlan
    asterisk_ip: str

    def at(self, address: str) -> str:
        return self.mapping[address]


@pytest.fixture(scope="module")
def edge(folder: Path, compiled: Compiled, webrtc: WebrtcPlan, mapping: dict[str, str]) -> Iterator[Edge]:
    env = {"PATH": SEARCH_PATH, "WEBRTC_AUTH_SECRET": SECRET}
    rtpengine_conf = _write(folder / "rtpengine.conf", adapt(compiled.files["rtpengine/rtpengine.conf"], mapping))
    rtpengine = start(_run_command(webrtc.rtpengine_command, webrtc.rtpengine_config, rtpengine_conf), folder / "rtpengine.log", env)
    kamailio: Daemon | None = None
    try:
        wait_for_ng((mapping[webrtc.rtpengine_ip], webrtc.ng_port))
        config = kamailio_cfg_for(folder, compiled, webrtc, mapping)
        kamailio = start(_run_command(webrtc.kamailio_command, webrtc.kamailio_config, config), folder / "kamailio.log", env)
        _wait_for_tcp((mapping[webrtc.kamailio_ip], webrtc.ws_port), kamailio, (webrtc.sip_port, webrtc.ws_port, webrtc.ctl_port))
        yield Edge(rtpengine, kamailio, mapping, webrtc, compiled.plan.network.asterisk_ip)
    except BaseException:
        print("rtpengine log:\n" + rtpengine.output())
        if kamailio:
            print("kamailio log:\n" + kamailio.output())
        raise
    finally:
        if kamailio:
            kamailio.stop()
        rtpengine.stop()


def _wait_for_tcp(address: tuple[str, int], running: Daemon, ports: tuple[int, ...], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            # Another program on this machine holding one of the ports (even on 0.0.0.0) makes the bind fail: show it.
            sockets = subprocess.run(["ss", "-lunatp"], capture_output=True, text=True, check=False).stdout
            holders = "\n".join(line for line in sockets.splitlines() if re.search(rf":({'|'.join(map(str, ports))})\s", line))
            raise AssertionError(f"exited with {running.process.returncode}:\n{running.output()}\nsockets on ports {ports}:\n{holders}")
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {address}:\n{running.output()}")


def healthcheck(compiled: Compiled, service: str, mapping: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The compose healthcheck of `service`, run here with its addresses adapted like the configs."""
    assert compiled.plan.webrtc is not None
    test = {"kamailio": compiled.plan.webrtc.kamailio_healthcheck, "rtpengine": compiled.plan.webrtc.rtpengine_healthcheck}[service]
    assert test[0] == "CMD"
    command = [adapt(part, mapping) for part in test[1:]]
    return subprocess.run(
        [daemon(command[0]), *command[1:]], capture_output=True, text=True, env={"PATH": SEARCH_PATH}, timeout=10, check=False
    )


def test_rtpengine_runs_userspace_and_answers_an_ng_ping(edge: Edge) -> None:
    webrtc = edge.webrtc
    assert ng_command((edge.at(webrtc.rtpengine_ip), webrtc.ng_port), {"command": "ping"}) == {"result": b"pong"}
    assert edge.rtpengine.process.poll() is None
    assert "Startup complete" in edge.rtpengine.output()


def test_healthchecks_pass_against_the_running_daemons(edge: Edge, compiled: Compiled) -> None:
    for service in ("rtpengine", "kamailio"):
        result = healthcheck(compiled, service, edge.mapping)
        assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"


def test_running_kamailio_does_not_log_the_secret(edge: Edge) -> None:
    assert edge.kamailio.process.poll() is None
    assert SECRET not in edge.kamailio.output()


def test_healthchecks_fail_when_nothing_answers(compiled: Compiled) -> None:
    """Pointed at an unused loopback address, both healthchecks report unhealthy."""
    assert compiled.plan.webrtc is not None
    nowhere = {"127.0.0.1": "127.254.254.254"}
    for service in ("rtpengine", "kamailio"):
        assert healthcheck(compiled, service, nowhere).returncode != 0, service


def test_rtpengine_allocates_media_ports_inside_the_published_range(edge: Edge) -> None:
    """An offer from Asterisk's side gets a port in port-min..port-max, bound on the internal address."""
    webrtc = edge.webrtc
    sdp = ASTERISK_SDP.format(address=edge.at(edge.asterisk_ip), port=40000)
    reply = ng_command(
        (edge.at(webrtc.rtpengine_ip), webrtc.ng_port),
        {
            "command": "offer",
            "call-id": "range-check",
            "from-tag": "a1",
            "sdp": sdp,
            "direction": [webrtc.internal.name, webrtc.public.name],
        },
    )
    assert reply.get("result") == b"ok", reply
    sdp_reply = reply["sdp"]
    assert isinstance(sdp_reply, bytes)
    address, port, _protocol = sdp_media(sdp_reply.decode())
    assert address == webrtc.advertised_ip
    assert webrtc.rtp.start <= port <= webrtc.rtp.end
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError):
        probe.bind((edge.at(webrtc.rtpengine_ip), port))  # rtpengine holds it
    ng_command((edge.at(webrtc.rtpengine_ip), webrtc.ng_port), {"command": "delete", "call-id": "range-check", "from-tag": "a1"})


# --- A browser and Asterisk around the running edge -----------------------------------------------


class FakeAsterisk:
    """Asterisk's SIP socket at the dispatcher address.

    A thread answers Kamailio's dispatcher probes (OPTIONS) at once, as Asterisk's
    identify for Kamailio does, so the destination never turns inactive; every
    other message waits in a queue for the test.
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.address = address
        self.received: queue.Queue[tuple[SipMessage, tuple[str, int]]] = queue.Queue()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            message = SipMessage.parse(data.decode())
            if message.method == "OPTIONS":
                self.reply(message, peer, "200 OK")
            else:
                self.received.put((message, peer))

    def next(self, wanted: str | int, seconds: float = 10.0) -> tuple[SipMessage, tuple[str, int]]:
        """The next request with method `wanted`, or response with status `wanted`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message, peer = self.received.get(timeout=left)
            except queue.Empty:
                break
            if wanted in (message.method, message.status):
                return message, peer
        raise AssertionError(f"Asterisk received no {wanted} within {seconds} s")

    def reply(self, request: SipMessage, peer: tuple[str, int], status: str, body: str = "") -> None:
        headers = [(key, value) for key, value in request.headers if key.lower() in {"via", "from", "call-id", "cseq", "record-route"}]
        headers.insert(2, ("To", f"{request.header('To')};tag=asterisk1"))
        headers.append(("Contact", f"<sip:5000@{self.address[0]}:{self.address[1]}>"))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.sock.sendto(SipMessage(f"SIP/2.0 {status}", headers, body).render().encode(), peer)

    def answer_next_invite(self) -> SipMessage:
        invite, peer = self.next("INVITE")
        self.reply(invite, peer, "200 OK", ASTERISK_SDP.format(address=self.address[0], port=40000))
        return invite

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def asterisk_socket(edge: Edge, compiled: Compiled) -> Iterator[FakeAsterisk]:
    fake = FakeAsterisk((edge.at(compiled.plan.network.asterisk_ip), compiled.plan.sip_port))
    yield fake
    fake.close()


@pytest.fixture
def asterisk(asterisk_socket: FakeAsterisk) -> FakeAsterisk:
    """Nothing left over from an earlier test (a retransmission) can be taken for this test's message."""
    while not asterisk_socket.received.empty():
        asterisk_socket.received.get_nowait()
    return asterisk_socket


def browser(edge: Edge, agent: str, secret: str = SECRET) -> Browser:
    webrtc = edge.webrtc
    ws = WebSocket(edge.at(webrtc.kamailio_ip), webrtc.ws_port, webrtc.ws_path)
    username, password = ephemeral_credentials(secret, agent)
    return Browser(ws, agent, webrtc.domain or webrtc.advertised_ip, username, password)


def _in_range(webrtc: WebrtcPlan, port: int) -> bool:
    return webrtc.rtp.start <= port <= webrtc.rtp.end


def test_browser_with_a_wrong_secret_is_refused(edge: Edge) -> None:
    phone = browser(edge, "agent9", secret="not-the-secret")
    try:
        response = phone.transaction("REGISTER", f"sip:{phone.domain}", f"sip:agent9@{phone.domain}")
        assert response.status in (401, 403), response.first_line
    finally:
        phone.ws.close()


def test_browser_registers_and_calls_asterisk_through_rtpengine(edge: Edge, asterisk: FakeAsterisk) -> None:
    webrtc = edge.webrtc
    phone = browser(edge, "agent7")
    try:
        registered = phone.transaction("REGISTER", f"sip:{phone.domain}", f"sip:agent7@{phone.domain}")
        assert registered.status == 200, registered.render()

        received: dict[str, SipMessage] = {}
        answering = threading.Thread(target=lambda: received.setdefault("invite", asterisk.answer_next_invite()))
        answering.start()
        answered = phone.transaction("INVITE", f"sip:5000@{phone.domain}", f"sip:5000@{phone.domain}", BROWSER_SDP)
        answering.join(10)
        assert answered.status == 200, answered.render()

        # Asterisk (internal side): plain RTP on rtpengine's container address, no ICE or DTLS.
        invite = received["invite"]
        address, port, protocol = sdp_media(invite.body)
        assert (address, protocol) == (edge.at(webrtc.rtpengine_ip), "RTP/AVP")
        assert _in_range(webrtc, port)
        assert "a=fingerprint" not in invite.body and "a=candidate" not in invite.body
        assert "a=sendrecv" in invite.body

        # The browser (public side): DTLS-SRTP with ICE on the advertised address.
        address, port, protocol = sdp_media(answered.body)
        assert (address, protocol) == (webrtc.advertised_ip, "RTP/SAVPF")
        assert _in_range(webrtc, port)
        assert "a=fingerprint:" in answered.body
        assert re.search(rf"^a=candidate:\S+ 1 UDP \d+ {re.escape(webrtc.advertised_ip)} {port} typ host", answered.body, re.M | re.I)
        # In-dialog requests come back to the address and port browsers connect to.
        assert any(f"{webrtc.advertised_ip}:{webrtc.advertised_port};transport=ws" in route for route in answered.all("Record-Route")), (
            answered.render()
        )
    finally:
        phone.ws.close()


def test_asterisk_calls_a_registered_agent(edge: Edge, asterisk: FakeAsterisk, compiled: Compiled) -> None:
    webrtc = edge.webrtc
    phone = browser(edge, "agent8")
    try:
        assert phone.transaction("REGISTER", f"sip:{phone.domain}", f"sip:agent8@{phone.domain}").status == 200
        kamailio = (edge.at(webrtc.kamailio_ip), webrtc.sip_port)
        host, port = asterisk.address
        offer = SipMessage(
            f"INVITE sip:agent8@{kamailio[0]}:{kamailio[1]} SIP/2.0",
            [
                ("Via", f"SIP/2.0/UDP {host}:{port};branch=z9hG4bKasterisk1;rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:queue@{host}>;tag=asterisk2"),
                ("To", "<sip:agent8@agents>"),
                ("Call-ID", "asterisk-to-agent-1"),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:queue@{host}:{port}>"),
                ("Content-Type", "application/sdp"),
            ],
            ASTERISK_SDP.format(address=host, port=40002),
        )
        asterisk.sock.sendto(offer.render().encode(), kamailio)
        incoming = SipMessage.parse(phone.ws.receive())
        while incoming.method != "INVITE":
            incoming = SipMessage.parse(phone.ws.receive())
        address, media_port, protocol = sdp_media(incoming.body)
        assert (address, protocol) == (webrtc.advertised_ip, "RTP/SAVPF")
        assert _in_range(webrtc, media_port)
        assert "a=ice-ufrag:" in incoming.body and "a=fingerprint:" in incoming.body

        reply = SipMessage(
            "SIP/2.0 200 OK",
            [(key, value) for key, value in incoming.headers if key.lower() in {"via", "from", "call-id", "cseq", "record-route"}]
            + [
                ("To", f"{incoming.header('To')};tag=browser1"),
                ("Contact", f"<sip:agent8@{phone.ws.local[0]}:{phone.ws.local[1]};transport=ws>"),
                ("Content-Type", "application/sdp"),
            ],
            BROWSER_SDP.replace("a=setup:actpass", "a=setup:active"),
        )
        phone.ws.send(reply.render())
        answer, _ = asterisk.next(200)
        address, media_port, protocol = sdp_media(answer.body)
        assert (address, protocol) == (edge.at(webrtc.rtpengine_ip), "RTP/AVP")
        assert _in_range(webrtc, media_port)
    finally:
        phone.ws.close()


def test_sip_from_anything_but_asterisk_or_a_websocket_is_refused(edge: Edge, loopback: Loopback) -> None:
    webrtc = edge.webrtc
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind((loopback.address(20), 0))
        stranger.settimeout(10)
        host, port = stranger.getsockname()
        request = SipMessage(
            f"INVITE sip:5000@{edge.at(webrtc.kamailio_ip)} SIP/2.0",
            [
                ("Via", f"SIP/2.0/UDP {host}:{port};branch=z9hG4bKstranger;rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:intruder@{host}>;tag=x1"),
                ("To", f"<sip:5000@{edge.at(webrtc.kamailio_ip)}>"),
                ("Call-ID", "stranger-1"),
                ("CSeq", "1 INVITE"),
            ],
        )
        stranger.sendto(request.render().encode(), (edge.at(webrtc.kamailio_ip), webrtc.sip_port))
        response = SipMessage.parse(stranger.recvfrom(65535)[0].decode())
        assert response.status == 403, response.first_line


# --- nginx -t -------------------------------------------------------------------------------------


def nginx_for_test(folder: Path, compiled: Compiled) -> Path:
    """nginx.conf with upstream names resolved to loopback and the certificate/temp paths in `folder`."""
    text = compiled.files["nginx/nginx.conf"]
    plan = compiled.plan
    for upstream in parse_nginx(text).find("upstream"):
        for server in upstream.find("server"):
            host, _, port = server.args[0].rpartition(":")
            text = text.replace(f"server {host}:{port};", f"server 127.0.0.1:{port};")
    certs = folder / "certs"
    certs.mkdir(exist_ok=True)
    subprocess.run(
        [
            daemon("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=omnigen-test",
            "-keyout",
            str(certs / "privkey.pem"),
            "-out",
            str(certs / "fullchain.pem"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    text = text.replace(" /tmp/", f" {folder}/")
    text = text.replace(plan.tls.certificate, str(certs / "fullchain.pem")).replace(plan.tls.key, str(certs / "privkey.pem"))
    return _write(folder / "nginx.conf", text)


def nginx_test(config: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [daemon("nginx"), "-t", "-q", "-e", "stderr", "-p", str(folder), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": SEARCH_PATH},
    )


def test_nginx_accepts_the_generated_config(folder: Path, compiled: Compiled) -> None:
    result = nginx_test(nginx_for_test(folder, compiled), folder)
    assert result.returncode == 0, result.stderr


def test_nginx_check_fails_on_a_broken_config(folder: Path, compiled: Compiled) -> None:
    config = nginx_for_test(folder, compiled)
    broken = _write(folder / "nginx-broken.conf", config.read_text().replace("proxy_http_version 1.1;", "proxy_http_version 1.1", 1))
    assert nginx_test(broken, folder).returncode != 0


def test_nginx_upstreams_are_the_service_ports_and_routes_the_websockets(compiled: Compiled, webrtc: WebrtcPlan) -> None:
    root = parse_nginx(compiled.files["nginx/nginx.conf"])
    listen = compiled.plan.listen
    upstreams = {upstream.args[0]: [server.args[0] for server in upstream.find("server")] for upstream in root.find("upstream")}
    assert upstreams == {
        "django": [f"django-app:{listen['django-app']}"],
        "websockets": [f"websockets:{listen['websockets']}"],
        "frontend": [f"frontend:{listen['frontend']}"],
        "kamailio": [f"kamailio:{webrtc.ws_port}"],
    }
    cfg = parse_kamailio_cfg(compiled.files["kamailio/kamailio.cfg"])
    assert any(item.proto == "tcp" and item.port == webrtc.ws_port for item in cfg.listens)
    routes = {" ".join(location.args): location for location in root.find("location")}
    for route, target in ((f"= {webrtc.ws_path}", "http://kamailio"), ("/channels/", "http://websockets/")):
        location = routes[route]
        proxy = location.first("proxy_pass")
        assert proxy is not None and proxy.args == (target,)
        headers = {d.args[0]: d.args[1:] for d in location.block or [] if d.name == "proxy_set_header"}
        assert headers["Upgrade"] == ("$http_upgrade",) and headers["Connection"] == ("$connection_upgrade",)
    servers = list(root.find("server"))
    https = [server for server in servers if any("ssl" in d.args for d in server.find("listen"))]
    assert [d.args[0] for d in https[0].find("listen")] == [str(listen["nginx-https"])]
    assert https[0].first("ssl_certificate").args == (compiled.plan.tls.certificate,)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("secret", "accepted"),
    [
        ("p$a #s@w/o%r'd y z", True),  # every hard character the sidecar admits for Kamailio
        ("p$a #s@w/o%r'd\"x y z", False),  # a double quote ends #!defenvs' string: Kamailio refuses the file
    ],
)
def test_the_sidecar_admits_exactly_the_auth_secrets_kamailio_reads(
    secret: str, accepted: bool, folder: Path, compiled: Compiled, webrtc: WebrtcPlan
) -> None:
    config = kamailio_cfg_for(folder, compiled, webrtc, None)
    env = {"PATH": SEARCH_PATH, "WEBRTC_AUTH_SECRET": secret}
    result = subprocess.run([daemon("kamailio"), "-c", "-f", str(config)], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr
    if accepted:
        assert Secrets(webrtc_auth_secret=secret).webrtc_auth_secret == secret
    else:
        with pytest.raises(ValueError, match="Kamailio cannot read this secret"):
            Secrets(webrtc_auth_secret=secret)
