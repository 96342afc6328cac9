"""Just enough SIP, WebSocket and rtpengine ng protocol to drive the real
Kamailio and rtpengine from tests, as a browser softphone and Asterisk would.

Everything talks to loopback addresses only, with timeouts on every read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field

TIMEOUT = 10.0


# --- rtpengine ng protocol (bencode over UDP) -----------------------------------------------------


def bencode(value: object) -> bytes:
    if isinstance(value, bytes):
        return str(len(value)).encode() + b":" + value
    if isinstance(value, str):
        return bencode(value.encode())
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, list):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(key) + bencode(value[key]) for key in sorted(value)) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> object:
    def parse(index: int) -> tuple[object, int]:
        char = data[index : index + 1]
        if char == b"i":
            end = data.index(b"e", index)
            return int(data[index + 1 : end]), end + 1
        if char == b"l":
            items, index = [], index + 1
            while data[index : index + 1] != b"e":
                item, index = parse(index)
                items.append(item)
            return items, index + 1
        if char == b"d":
            result: dict[str, object] = {}
            index += 1
            while data[index : index + 1] != b"e":
                key, index = parse(index)
                value, index = parse(index)
                assert isinstance(key, bytes)
                result[key.decode()] = value
            return result, index + 1
        colon = data.index(b":", index)
        length = int(data[index:colon])
        return data[colon + 1 : colon + 1 + length], colon + 1 + length

    value, end = parse(0)
    assert end == len(data), "trailing bytes after bencoded value"
    return value


def ng_command(address: tuple[str, int], command: dict[str, object], timeout: float = TIMEOUT) -> dict[str, object]:
    """Send one ng command (`COOKIE d...e`) and return the decoded reply dictionary."""
    cookie = os.urandom(6).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(cookie + b" " + bencode(command), address)
        reply, _ = sock.recvfrom(65535)
    received_cookie, _, body = reply.partition(b" ")
    assert received_cookie == cookie, reply
    decoded = bdecode(body)
    assert isinstance(decoded, dict)
    return decoded


def wait_for_ng(address: tuple[str, int], deadline_seconds: float = 30.0) -> None:
    """Poll with `ping` until rtpengine answers `pong` (it binds before it answers)."""
    deadline = time.monotonic() + deadline_seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            # A ping sent while rtpengine is still starting can go unanswered: ask again soon.
            if ng_command(address, {"command": "ping"}, timeout=1.0).get("result") == b"pong":
                return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"rtpengine did not answer an ng ping on {address}: {last}")


# --- WebSocket client (RFC 6455), text frames only ------------------------------------------------


class WebSocket:
    def __init__(self, host: str, port: int, path: str, protocol: str = "sip") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"WebSocket handshake closed: {response!r}")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise AssertionError(f"WebSocket handshake refused: {head.decode(errors='replace')}")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert accept in head, "Sec-WebSocket-Accept does not match the key"

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        length = len(payload)
        header = bytes([0x81])  # FIN + text
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("WebSocket closed by the server")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self) -> str:
        """The next text message; answers pings and skips other control frames."""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            payload = self._read(length)
            if mask:
                payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x8:
                raise AssertionError("WebSocket closed by the server")

    def close(self) -> None:
        self.sock.close()


# --- SIP messages ---------------------------------------------------------------------------------


@dataclass
class SipMessage:
    first_line: str
    headers: list[tuple[str, str]]
    body: str = ""

    @classmethod
    def parse(cls, text: str) -> SipMessage:
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return cls(lines[0], headers, body)

    @property
    def status(self) -> int | None:
        match = re.match(r"SIP/2\.0 (\d{3})", self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def render(self) -> str:
        headers = [(key, value) for key, value in self.headers if key.lower() != "content-length"]
        lines = [self.first_line, *(f"{key}: {value}" for key, value in headers), f"Content-Length: {len(self.body.encode())}"]
        return "\r\n".join(lines) + "\r\n\r\n" + self.body


def branch() -> str:
    return "z9hG4bK" + os.urandom(6).hex()


def tag() -> str:
    return os.urandom(4).hex()


def ephemeral_credentials(secret: str, agent: str, lifetime: int = 3600) -> tuple[str, str]:
    """auth_ephemeral's scheme: user "EXPIRY:AGENT", password base64(HMAC-SHA1(secret, user))."""
    username = f"{int(time.time()) + lifetime}:{agent}"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


def digest_authorization(challenge: str, method: str, uri: str, username: str, password: str) -> str:
    """An RFC 2617 Digest answer (MD5, qop=auth when offered) to a WWW-/Proxy-Authenticate value."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    answer = f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in params.get("qop", "").split(","):
        cnonce, count = os.urandom(8).hex(), "00000001"
        response = hashlib.md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        answer += f', qop=auth, nc={count}, cnonce="{cnonce}"'
    else:
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return answer + f', response="{response}"'


@dataclass
class Browser:
    """A WebRTC softphone's SIP side over a WebSocket."""

    ws: WebSocket
    agent: str
    domain: str
    username: str
    password: str
    call_id: str = field(default_factory=lambda: os.urandom(8).hex())
    from_tag: str = field(default_factory=tag)
    cseq: int = 0

    def request(self, method: str, uri: str, to: str, body: str = "", extra: tuple[tuple[str, str], ...] = ()) -> SipMessage:
        self.cseq += 1
        host, port = self.ws.local
        headers = [
            ("Via", f"SIP/2.0/WS {host}:{port};branch={branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self.agent}@{self.domain}>;tag={self.from_tag}"),
            ("To", f"<{to}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} {method}"),
            ("Contact", f"<sip:{self.agent}@{host}:{port};transport=ws>"),
            *extra,
        ]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return SipMessage(f"{method} {uri} SIP/2.0", headers, body)

    def transaction(self, method: str, uri: str, to: str, body: str = "") -> SipMessage:
        """Send a request and return its final response, answering one auth challenge."""
        self.ws.send(self.request(method, uri, to, body).render())
        response = self._final()
        if response.status in (401, 407):
            challenge = response.header("WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate")
            assert challenge, response.render()
            answer = ("Authorization" if response.status == 401 else "Proxy-Authorization",
                      digest_authorization(challenge, method, uri, self.username, self.password))
            self.ws.send(self.request(method, uri, to, body, (answer,)).render())
            response = self._final()
        return response

    def _final(self) -> SipMessage:
        while True:
            response = SipMessage.parse(self.ws.receive())
            if response.status is not None and response.status >= 200:
                return response


def sdp_media(body: str) -> tuple[str, int, str]:
    """(connection address, audio port, transport protocol) of the first audio stream."""
    address = re.search(r"^c=IN IP4 (\S+)", body, re.M)
    media = re.search(r"^m=audio (\d+) (\S+)", body, re.M)
    assert address and media, body
    return address.group(1), int(media.group(1)), media.group(2)


BROWSER_SDP = """v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
a=msid-semantic: WMS\r
m=audio 50000 UDP/TLS/RTP/SAVPF 111 0 8\r
c=IN IP4 127.0.0.1\r
a=rtcp:50000 IN IP4 127.0.0.1\r
a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r
a=setup:actpass\r
a=mid:0\r
a=sendrecv\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
"""

ASTERISK_SDP = """v=0\r
o=- 1 1 IN IP4 {address}\r
s=Asterisk\r
c=IN IP4 {address}\r
t=0 0\r
m=audio {port} RTP/AVP 0 8\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=sendrecv\r
"""
