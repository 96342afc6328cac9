#!/usr/bin/python3
"""An Asterisk stand-in for the e2e tier: AMI and ARI as configured, the `asterisk -rx` console.

Asterisk is not packaged in Debian bookworm and Alpine's repositories cannot
be reached here, so the image runs this program as `/usr/sbin/asterisk` (stdlib
only, Debian's python3). It plays what the deployment's clients rely on, read
from the files the generated compose mounts into /etc/asterisk, and is never
kinder than Asterisk:

- AMI (manager.conf): only when `[general] enabled=yes`, on its `bindaddr` and
  `port`. The banner, message framing and answers are Asterisk's. A Login
  succeeds only with a user section's exact `secret`, from an address its
  `deny`/`permit` rules allow (Asterisk's order: the last matching rule wins);
  anything else gets `Response: Error / Message: Authentication failed` after a
  second and the connection is closed, as manager.c's action_login does.
  Actions before a login get `Permission denied`; Originate needs the `originate` write class and,
  with no telephony behind it, fails as Asterisk does for a channel it cannot
  create.
- ARI (http.conf + ari.conf): the HTTP server only when http.conf says
  `enabled=yes`, on `bindaddr`/`bindport`; /ari/ only when ari.conf is
  enabled; HTTP basic auth (or `api_key=user:password`) checked against the
  ari.conf users (`password_format` plain or crypt); `read_only` users may
  only GET. Wrong credentials: 401, as Asterisk answers.
- `asterisk -rx COMMAND` talks to the running daemon over its control socket
  (/var/run/asterisk/asterisk.ctl), like Asterisk's remote console. The
  daemon answers only while every listener its configuration asks for is
  serving, so the health check `asterisk -rx "core show uptime"` fails when
  the AMI listener is down. A listener that cannot bind stops the daemon.

SIP (pjsip.conf) and media are not played: nothing in the e2e tier places calls.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CONFIG_DIR = Path(os.environ.get("ASTERISK_STANDIN_CONFIG_DIR", "/etc/asterisk"))
CONTROL_SOCKET = Path(os.environ.get("ASTERISK_STANDIN_CONTROL", "/var/run/asterisk/asterisk.ctl"))
VERSION = "18.20.0"
AMI_BANNER = "Asterisk Call Manager/7.0.3\r\n"
STARTED = time.time()


# --- Asterisk's configuration file format --------------------------------------------------


def _strip_comment(line: str) -> str:
    """Drop a `;` comment; `\\;` is a literal semicolon."""
    out = []
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line) and line[index + 1] == ";":
            out.append(";")
            index += 2
            continue
        if char == ";":
            break
        out.append(char)
        index += 1
    return "".join(out).strip()


def read_config(name: str, _depth: int = 0) -> list[tuple[str, list[tuple[str, str]]]]:
    """Sections of an Asterisk .conf file in order, each with its (key, value) pairs in order (keys repeat)."""
    path = CONFIG_DIR / name
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    current: list[tuple[str, str]] | None = None
    in_block_comment = False
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw
        if in_block_comment:
            if "--;" not in line:
                continue
            line = line.split("--;", 1)[1]
            in_block_comment = False
        if ";--" in line:
            before, after = line.split(";--", 1)
            if "--;" in after:
                line = before + after.split("--;", 1)[1]
            else:
                line, in_block_comment = before, True
        line = _strip_comment(line)
        if not line:
            continue
        if line.startswith(("#include", "#tryinclude")) and _depth < 10:
            included = line.split(None, 1)[1].strip().strip('"')
            if (CONFIG_DIR / included).is_file():
                sections.extend(read_config(included, _depth + 1))
            continue
        if line.startswith("["):
            name_end = line.find("]")
            current = []
            sections.append((line[1:name_end].strip(), current))
            continue
        if current is None:
            continue
        separator = "=>" if "=>" in line and line.index("=>") <= line.find("=") else "="
        if separator not in line:
            continue
        key, value = line.split(separator, 1)
        current.append((key.strip().lower(), value.strip()))
    return sections


def _last(pairs: list[tuple[str, str]], key: str, default: str = "") -> str:
    values = [value for name, value in pairs if name == key]
    return values[-1] if values else default


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"yes", "true", "y", "t", "1", "on"}


def _general(sections: list[tuple[str, list[tuple[str, str]]]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, section_pairs in sections:
        if name.lower() == "general":
            pairs.extend(section_pairs)
    return pairs


# --- Access control lists (permit/deny), as Asterisk's acl.c applies them ----------------------


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address, _, mask = text.partition("/")
    if not mask:
        return ipaddress.ip_network(address)
    if mask.isdigit():
        return ipaddress.ip_network(f"{address}/{mask}", strict=False)
    return ipaddress.ip_network(f"{address}/{ipaddress.ip_address(mask)}", strict=False)


def acl_allows(rules: list[tuple[str, str]], peer: str) -> bool:
    """Allowed unless a rule says otherwise; every rule is checked and the last one that matches decides."""
    address = ipaddress.ip_address(peer)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    allowed = True
    for sense, text in rules:
        try:
            network = _network(text)
        except ValueError:
            return False  # Asterisk refuses to load a user with a malformed ACL
        if address.version == network.version and address in network:
            allowed = sense == "permit"
    return allowed


# --- AMI ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManagerUser:
    name: str
    secret: str
    acl: list[tuple[str, str]] = field(default_factory=list)
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()


def _classes(text: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def manager_config() -> tuple[dict[str, str], dict[str, ManagerUser]]:
    sections = read_config("manager.conf")
    general = dict(_general(sections))
    users = {}
    for name, pairs in sections:
        if name.lower() == "general":
            continue
        acl = [(key, value) for key, value in pairs if key in {"permit", "deny"}]
        users[name] = ManagerUser(name, _last(pairs, "secret"), acl, _classes(_last(pairs, "read")), _classes(_last(pairs, "write")))
    return general, users


def _message(fields: list[tuple[str, str]]) -> bytes:
    return "".join(f"{key}: {value}\r\n" for key, value in fields).encode() + b"\r\n"


class ManagerSession:
    """One AMI connection."""

    def __init__(self, users: dict[str, ManagerUser], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.users = users
        self.reader = reader
        self.writer = writer
        self.user: ManagerUser | None = None
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "127.0.0.1"

    async def run(self) -> None:
        self.writer.write(AMI_BANNER.encode())
        await self.writer.drain()
        try:
            while True:
                action = await self._read_action()
                if action is None:
                    return
                if not await self._handle(action):
                    return
        finally:
            self.writer.close()

    async def _read_action(self) -> dict[str, str] | None:
        fields: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text:
                if fields:
                    return fields
                continue
            key, _, value = text.partition(":")
            fields[key.strip().lower()] = value.strip()

    async def _send(self, fields: list[tuple[str, str]], action: dict[str, str]) -> None:
        if "actionid" in action:
            fields.insert(1, ("ActionID", action["actionid"]))
        self.writer.write(_message(fields))
        await self.writer.drain()

    async def _handle(self, action: dict[str, str]) -> bool:
        """Answer one action; False closes the connection."""
        name = action.get("action", "").lower()
        if not name:
            await self._send([("Response", "Error"), ("Message", "Missing action in request")], action)
            return True
        if name == "login":
            return await self._login(action)
        if name == "logoff":
            await self._send([("Response", "Goodbye"), ("Message", "Thanks for all the fish.")], action)
            return False
        if name == "challenge":
            await self._send([("Response", "Error"), ("Message", "Must specify AuthType")], action)
            return True
        if self.user is None:
            await self._send([("Response", "Error"), ("Message", "Permission denied")], action)
            return True
        if name == "ping":
            await self._send([("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")], action)
        elif name == "corestatus":
            uptime = time.strftime("%H:%M:%S", time.gmtime(STARTED))
            await self._send([("Response", "Success"), ("CoreStartupTime", uptime), ("CoreCurrentCalls", "0")], action)
        elif name == "command":
            if "command" not in self.user.write:
                await self._send([("Response", "Error"), ("Message", "Permission denied")], action)
                return True
            output = run_console_command(action.get("command", ""))
            fields = [("Response", "Success"), ("Message", "Command output follows")]
            fields += [("Output", line) for line in output.splitlines()]
            await self._send(fields, action)
        elif name == "originate":
            await self._originate(action)
        else:
            message = f"Invalid/unknown command: {action.get('action')}. Use Action: ListCommands to show available commands."
            await self._send([("Response", "Error"), ("Message", message)], action)
        return True

    async def _login(self, action: dict[str, str]) -> bool:
        if self.user is not None:
            await self._send([("Response", "Success"), ("Message", "Already authenticated")], action)
            return True
        user = self.users.get(action.get("username", ""))
        secret = action.get("secret", "")
        accepted = (
            user is not None
            and bool(user.secret)
            and hmac.compare_digest(user.secret.encode(), secret.encode())
            and acl_allows(user.acl, self.peer)
        )
        if not accepted or user is None:
            log(f"  == Connect attempt from '{self.peer}' unable to authenticate")
            await asyncio.sleep(1)  # manager.c's action_login sleeps a second before refusing
            await self._send([("Response", "Error"), ("Message", "Authentication failed")], action)
            return False
        self.user = user
        log(f"  == Manager '{user.name}' logged on from {self.peer}")
        await self._send([("Response", "Success"), ("Message", "Authentication accepted")], action)
        if action.get("events", "on").lower() not in {"off", "no"} and user.read & {"system", "all"}:
            self.writer.write(
                _message(
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", "0"),
                        ("LastReload", "0"),
                        ("Status", "Fully Booted"),
                    ]
                )
            )
            await self.writer.drain()
        return True

    async def _originate(self, action: dict[str, str]) -> None:
        assert self.user is not None
        if "originate" not in self.user.write and "all" not in self.user.write:
            await self._send([("Response", "Error"), ("Message", "Permission denied")], action)
            return
        # No SIP stack: the channel cannot be created, which Asterisk reports as a failed originate.
        if _truthy(action.get("async", "no")):
            await self._send([("Response", "Success"), ("Message", "Originate successfully queued")], action)
            event = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
            if "actionid" in action:
                event.append(("ActionID", action["actionid"]))
            event += [("Response", "Failure"), ("Channel", action.get("channel", "")), ("Reason", "0"), ("Uniqueid", "<null>")]
            self.writer.write(_message(event))
            await self.writer.drain()
        else:
            await self._send([("Response", "Error"), ("Message", "Originate failed")], action)


# --- ARI over Asterisk's HTTP server ----------------------------------------------------------


@dataclass(frozen=True)
class AriUser:
    name: str
    password: str
    password_format: str
    read_only: bool


def ari_users() -> tuple[bool, dict[str, AriUser]]:
    sections = read_config("ari.conf")
    enabled = _truthy(_last(_general(sections), "enabled", "yes"))
    users = {}
    for name, pairs in sections:
        if name.lower() == "general" or _last(pairs, "type") != "user":
            continue
        users[name] = AriUser(
            name, _last(pairs, "password"), _last(pairs, "password_format", "plain").lower(), _truthy(_last(pairs, "read_only", "no"))
        )
    return enabled, users


def _password_matches(user: AriUser, given: str) -> bool:
    if not user.password:
        return False
    if user.password_format == "crypt":
        import crypt  # Python 3.11 still has it; Asterisk checks crypt(3) hashes the same way

        return hmac.compare_digest(crypt.crypt(given, user.password) or "", user.password)
    return hmac.compare_digest(user.password.encode(), given.encode())


class AriHandler(BaseHTTPRequestHandler):
    server_version = f"Asterisk/{VERSION}"
    sys_version = ""
    ari_enabled = False
    users: dict[str, AriUser] = {}  # noqa: RUF012 - set once per server before it starts

    def log_message(self, format: str, *args: object) -> None:
        log("  == HTTP " + format % args)

    def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _user(self) -> AriUser | None:
        credentials = None
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                credentials = base64.b64decode(header[6:].strip(), validate=True).decode()
            except ValueError:
                credentials = None
        if credentials is None:
            api_key = parse_qs(urlsplit(self.path).query).get("api_key")
            credentials = api_key[0] if api_key else None
        if credentials is None or ":" not in credentials:
            return None
        name, _, password = credentials.partition(":")
        user = self.users.get(name)
        return user if user is not None and _password_matches(user, password) else None

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        if not self.ari_enabled or not path.startswith("/ari/"):
            self._answer(404, {"message": "Not Found"})
            return
        user = self._user()
        if user is None:
            self._answer(401, {"message": "Authentication required"}, {"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'})
            return
        if user.read_only and self.command != "GET":
            self._answer(403, {"message": "Forbidden"})
            return
        if self.command == "GET" and path == "/ari/asterisk/info":
            self._answer(
                200,
                {
                    "system": {"version": VERSION, "entity_id": socket.gethostname()},
                    "status": {"startup_time": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(STARTED))},
                },
            )
        elif self.command == "GET" and path == "/ari/asterisk/ping":
            self._answer(
                200,
                {
                    "asterisk_id": socket.gethostname(),
                    "ping": "pong",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()),
                },
            )
        elif self.command == "GET" and path in {"/ari/channels", "/ari/bridges", "/ari/endpoints", "/ari/applications"}:
            self._answer(200, [])
        else:
            self._answer(404, {"message": "Resource not found"})

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch


# --- The daemon and its console -----------------------------------------------------------------


def log(text: str) -> None:
    print(text, flush=True)


def run_console_command(command: str) -> str:
    words = command.split()
    if words[:3] == ["core", "show", "uptime"]:
        seconds = int(time.time() - STARTED)
        return f"System uptime: {seconds} seconds\nLast reload: {seconds} seconds\n"
    if words[:3] == ["core", "show", "version"]:
        return f"Asterisk {VERSION} (omnigen e2e stand-in) built on Debian bookworm\n"
    if words[:3] == ["manager", "show", "users"]:
        _, users = manager_config()
        return (
            "\nusername\n--------\n"
            + "".join(f"{name}\n" for name in users)
            + f"-------------------\n{len(users)} manager users configured.\n"
        )
    return f"No such command '{command}' (type 'core show help {command}' for other possible commands)\n"


class Daemon:
    def __init__(self) -> None:
        self.listeners: list[asyncio.AbstractServer] = []
        self.http: ThreadingHTTPServer | None = None

    def healthy(self) -> bool:
        http_up = self.http is None or (self.http.socket.fileno() != -1)
        return all(server.is_serving() for server in self.listeners) and http_up

    async def start(self) -> None:
        general, users = manager_config()
        if _truthy(general.get("enabled", "no")):
            host = general.get("bindaddr", "0.0.0.0")
            port = int(general.get("port", "5038"))

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await ManagerSession(users, reader, writer).run()

            self.listeners.append(await asyncio.start_server(serve, host, port))
            log(f"  == Manager registered action ... AMI listening on {host}:{port}")
        http_general = dict(_general(read_config("http.conf"))) if (CONFIG_DIR / "http.conf").is_file() else {}
        if _truthy(http_general.get("enabled", "no")):
            enabled, ari = ari_users() if (CONFIG_DIR / "ari.conf").is_file() else (False, {})
            handler = type("ConfiguredAriHandler", (AriHandler,), {"ari_enabled": enabled, "users": ari})
            host = http_general.get("bindaddr", "0.0.0.0")
            port = int(http_general.get("bindport", "8088"))
            self.http = ThreadingHTTPServer((host, port), handler)
            threading.Thread(target=self.http.serve_forever, daemon=True).start()
            log(f"  == HTTP server listening on {host}:{port} (ARI {'enabled' if enabled else 'disabled'})")
        CONTROL_SOCKET.unlink(missing_ok=True)
        self.listeners.append(await asyncio.start_unix_server(self._console, str(CONTROL_SOCKET)))
        log(f"Asterisk Ready. (stand-in {uuid.uuid4().hex[:8]})")

    async def _console(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = (await reader.readline()).decode("utf-8", errors="replace").strip()
        if self.healthy():
            writer.write(run_console_command(command).encode())
        await writer.drain()
        writer.close()


async def run_daemon() -> None:
    daemon = Daemon()
    await daemon.start()
    await asyncio.Event().wait()


def remote_command(command: str) -> int:
    """`asterisk -rx COMMAND`: the running daemon's answer, or Asterisk's message and exit 1 when there is none."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(CONTROL_SOCKET))
            client.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
    except OSError:
        print(f"Unable to connect to remote asterisk (does {CONTROL_SOCKET} exist?)")
        return 1
    answer = b"".join(chunks).decode("utf-8", errors="replace")
    if not answer:
        print("Asterisk is not ready (a listener its configuration asks for is down)")
        return 1
    sys.stdout.write(answer)
    return 0


def main(argv: list[str]) -> int:
    command = None
    for index, argument in enumerate(argv):
        if argument.startswith("-") and not argument.startswith("--") and "x" in argument:
            rest = argument[argument.index("x") + 1 :]
            command = rest or (argv[index + 1] if index + 1 < len(argv) else "")
            break
    if command is not None:
        return remote_command(command)
    if "-V" in argv:
        print(f"Asterisk {VERSION}")
        return 0
    try:
        asyncio.run(run_daemon())
    except OSError as error:
        log(f"ERROR: cannot start a listener: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
