"""Import an existing hand-written deployment into a profile and its secrets sidecar.

The deployment is read the way `omnigen lint` reads it (deployment.load_deployment:
compose YAML with positions, `${VAR}` from its .env, the Asterisk configs it
mounts). Every value the profile can express is offered to the profile model's
own validators; what the model refuses, what it cannot express and what it does
differently on purpose is recorded as a Note, so the operator sees what changed
and why. Nothing here touches the disk: the command reads and writes.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from omnigen import __version__
from omnigen.catalog.application import COMPONENT_CONTEXTS
from omnigen.errors import InputIssue, ProfileError
from omnigen.formats.asteriskconf import parse_conf
from omnigen.formats.composemerge import split_volume
from omnigen.formats.composeports import PortSpec, parse_port
from omnigen.formats.redact import HIDDEN, shown_value
from omnigen.inputs.credentials import TokenFactory, random_token, sidecar_text
from omnigen.inputs.profile import SCHEMA_VERSION, SECRET_NAMES, VOLUME_KEYS, Profile, Secrets
from omnigen.loading import validate, validate_profile
from omnigen.pipeline import Compiled, compile_profile
from omnigen.plan.capacity import RtpRange, port_plan
from omnigen.plan.plan import DATABASE_PASSWORD_SCRIPT, DATABASE_VOLUMES, VOLUME_MOUNTS
from omnigen.search import most_that_fits
from omnigen.verify.deployment import ASTERISK_CONFIG_DIR, Deployment, deployment_from_memory
from omnigen.verify.rules import Finding, run_rules

NoteKind = Literal["kept", "changed", "closed", "dropped", "generated", "data", "steps", "fixed", "manual"]

# Report order, with what each heading means to the operator.
NOTE_KINDS: dict[NoteKind, str] = {
    "kept": "carried over as they were",
    "changed": "carried over, adjusted to what the profile model allows",
    "closed": "published ports the generated deployment keeps inside the compose network",
    "dropped": "settings the generated deployment never contains",
    "generated": "secrets",
    "data": "named volumes of the original: reused by their real names (nothing is copied), new, or no longer used",
    "steps": "to do once the generated stack is up (docs/migrating.md)",
    "fixed": "defects of the original that the generated files cannot have",
    "manual": "not imported: outside what a profile describes; carry these over by hand if you need them",
}

RFC1918_HINT = "10/8, 172.16/12, 192.168/16"

# The generated stack's services, and which of the original's services feed each image.
IMAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgresql",),
    "redis": ("redis",),
    "minio": ("minio",),
    "backend": ("django-app", "celery-worker", "celery-beat"),
    "websockets": ("websockets",),
    "asterisk": ("asterisk",),
    "dialer_api": ("dialer-api",),
    "dialer_worker": ("dialer-worker",),
    "frontend": ("frontend",),
    "nginx": ("nginx",),
}
GENERATED_SERVICES = frozenset(service for services in IMAGE_SOURCES.values() for service in services)
# Services of the v2 layout that no OmniVoIP component uses (docs/application.md), and why they go.
UNUSED_SERVICES = {
    "dialer-postgresql": "no dialer component opens a database (the dialer keeps its state in Redis); docs/application.md",
    "gearman": "no OmniVoIP component submits or runs Gearman jobs (the dialer worker is a Celery worker on Redis); docs/application.md",
}
INTERNAL_SERVICES = frozenset({"postgresql", "dialer-postgresql", "redis", "minio", "gearman"})
BEHIND_NGINX = frozenset({"django-app", "websockets", "frontend", "dialer-api"})

# Where each secret lives in an OmniVoIP v2 deployment: (service, environment key), first hit wins.
SECRET_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "postgres_password": (("postgresql", "POSTGRES_PASSWORD"), ("django-app", "POSTGRES_PASSWORD")),
    "redis_password": (("redis", "REDIS_PASSWORD"), ("django-app", "REDIS_PASSWORD"), ("celery-worker", "REDIS_PASSWORD")),
    "minio_root_password": (("minio", "MINIO_ROOT_PASSWORD"),),
    "django_secret_key": (("django-app", "SECRET_KEY"), ("django-app", "DJANGO_SECRET_KEY")),
    "ami_password": (("asterisk", "ACD_AMI_PASSWORD"),),
}
# .env names of the same secrets, for deployments whose services get them another way.
SECRET_ENV_KEYS: dict[str, tuple[str, ...]] = {
    "postgres_password": ("POSTGRES_PASSWORD",),
    "redis_password": ("REDIS_PASSWORD",),
    "minio_root_password": ("MINIO_ROOT_PASSWORD", "MINIO_HTTP_ADMIN_PASS"),
    "django_secret_key": ("DJANGO_SECRET_KEY",),
    "ami_password": ("ACD_AMI_PASSWORD",),
}

# Settings the model can never produce (DOMAIN.md s.1, s.2, s.8), and why.
FORBIDDEN: dict[str, str] = {
    "privileged": "a privileged container is root on the host and fails on unprivileged LXC and rootless hosts",
    "cap_add": "added capabilities widen the attack surface and are refused by unprivileged hosts; every service runs with cap_drop ALL",
    "sysctls": "per-container sysctls fail on unprivileged LXC and rootless hosts",
    "network_mode": "shared network namespaces remove isolation; the generated stack uses its own bridge network",
    "userns_mode": "a host user namespace breaks on unprivileged LXC and rootless hosts",
    "pid": "a shared PID namespace removes isolation",
    "ipc": "a shared IPC namespace removes isolation",
    "uts": "a shared UTS namespace removes isolation",
    "cgroup": "a host cgroup namespace removes isolation",
    "devices": "host devices bypass the container's isolation",
}

# Why a published port of the original stays closed, by (service, container port); then by service.
CLOSED_PORTS: dict[tuple[str, int], str] = {
    ("asterisk", 5038): "the Asterisk Manager Interface serves django and the dialer inside the network; published, it is a remote control of the PBX",
    ("asterisk", 5061): "SIP over TLS: the generated pjsip.conf has no TLS transport",
    ("asterisk", 8088): "Asterisk's HTTP/WebSocket port: the generated stack serves browsers through nginx only",
    ("asterisk", 8089): "Asterisk's HTTPS/secure WebSocket port: the generated stack serves browsers through nginx only",
}

# Why a value in the generated .env differs from the original's.
ENV_REASONS: dict[str, str] = {
    "POSTGRES_PORT": "PostgreSQL's port inside the network",
    "REDIS_PORT": "Redis's port inside the network",
    "ACD_RTP_PORT_MIN": "the RTP range follows from capacity (see capacity.concurrent_calls)",
    "ACD_RTP_PORT_MAX": "the RTP range follows from capacity (see capacity.concurrent_calls)",
    "ACD_HOSTNAME": "Asterisk is reached by its service name on the compose network",
    "EXTERNAL_IP": "the address SIP/SDP advertise, from network.public_ip or network.bind_ip",
    "DJANGO_ALLOWED_HOSTS": "computed from project.domain and the network addresses",
    "BUCKET_ENDPOINT_MINIO": "MinIO is reached by its service name inside the network",
    "CELERY_BROKER_URL": "the Redis password is percent-encoded inside the URL",
    "CELERY_RESULT_BACKEND": "the Redis password is percent-encoded, and results use their own Redis database (2; the backend's cache has 1)",
    "REDIS_URL": "the Redis password is percent-encoded inside the URL",
    "DIALER_REDIS_URL": "the Redis password is percent-encoded inside the URL",
}

_ENV_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_CONCURRENCY = re.compile(r"--concurrency[= ]?(\d+)")
_REQUIREPASS = re.compile(r"--requirepass\s+(\"[^\"]*\"|'[^']*'|\S+)")


class ImportRefused(ProfileError):
    """The deployment lacks something the profile needs and no option supplied it (exit 2)."""


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    subject: str
    message: str
    source: str | None = None

    def render(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"{self.subject}: {self.message}{where}"


@dataclass(frozen=True)
class ImportOptions:
    """What the operator can tell import that a compose deployment does not record."""

    name: str | None = None
    public_ip: str | None = None
    bind_ip: str | None = None
    host_kind: str | None = None
    calls: int | None = None
    compose_project: str | None = None


@dataclass(frozen=True)
class EnvChange:
    key: str
    old: str
    new: str
    secret: bool
    reason: str


@dataclass(frozen=True)
class Imported:
    profile_text: str
    profile: Profile
    secrets_text: str
    compiled: Compiled
    notes: tuple[Note, ...]
    env_changes: tuple[EnvChange, ...]
    original_findings: tuple[Finding, ...]

    def notes_of(self, kind: NoteKind) -> list[Note]:
        return [note for note in self.notes if note.kind == kind]


@dataclass
class _Value:
    value: Any
    source: str | None


@dataclass
class _Draft:
    """The profile being assembled: section -> key -> value with its provenance comment."""

    sections: dict[str, dict[str, _Value]] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    def set(self, dotted: str, value: Any, source: str | None) -> None:
        section, key = dotted.split(".")
        self.sections.setdefault(section, {})[key] = _Value(value, source)

    def note(self, kind: NoteKind, subject: str, message: str, source: str | None = None) -> None:
        self.notes.append(Note(kind, subject, message, source))

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for section, keys in self.sections.items():
            data[section] = {key: item.value for key, item in keys.items()}
        return data


# ---------------------------------------------------------------------------
# Reading the deployment


_SINGLE_REFERENCE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}?$")


def _where(deployment: Deployment, *path: str | int) -> str:
    """Where a compose value comes from: the .env line when the value is one `${VAR}`, else the compose line."""
    raw = deployment.raw_strings.get(tuple(path))
    if raw is not None and (match := _SINGLE_REFERENCE.match(raw.strip())):
        location = deployment.env_location(match.group(1))
        if location is not None:
            return f"{location} {match.group(1)}"
    return str(deployment.where(*path))


def _env_where(deployment: Deployment, key: str) -> str | None:
    location = deployment.env_location(key)
    return f"{location} {key}" if location else None


@dataclass(frozen=True)
class _Published:
    service: str
    index: int
    spec: PortSpec
    source: str


def _published(deployment: Deployment) -> list[_Published]:
    found = []
    for name, service in deployment.services.items():
        ports = service.get("ports")
        if not isinstance(ports, list):
            continue
        for index, entry in enumerate(ports):
            spec = parse_port(entry)
            if spec is not None:
                found.append(_Published(name, index, spec, _where(deployment, "services", name, "ports", index)))
    return found


# Known-good values for a section's required keys, so one key can be judged alone.
_REQUIRED_SAMPLES: dict[str, dict[str, Any]] = {"project": {"name": "omnivoip"}, "capacity": {"concurrent_calls": 1}}


def _section_model(section: str) -> type[BaseModel]:
    annotation = Profile.model_fields[section].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation


def _default(dotted: str) -> Any:
    section, key = dotted.split(".")
    return _section_model(section).model_fields[key].default


def _field_problem(section: str, key: str, value: Any) -> str | None:
    """The profile model's own verdict on one value, or None when it accepts it."""
    try:
        _section_model(section).model_validate({**_REQUIRED_SAMPLES.get(section, {}), key: value})
    except ValidationError as exc:
        messages = [error["msg"].removeprefix("Value error, ") for error in exc.errors(include_url=False) if error["loc"][:1] == (key,)]
        return "; ".join(messages) or None
    return None


def _offer(draft: _Draft, dotted: str, value: Any, source: str | None, *, default_note: str | None = None) -> None:
    """Keep `value` if the model accepts it; otherwise leave the key at its default and say why."""
    section, key = dotted.split(".")
    problem = _field_problem(section, key, value)
    if problem is None:
        draft.set(dotted, value, f"from {source}" if source else None)
        draft.note("kept", dotted, repr(value) if isinstance(value, str) else str(value), source)
        return
    draft.note("changed", dotted, f"{value!r} is refused ({problem}); the default {_default(dotted)!r} is used{default_note or ''}", source)


# ---------------------------------------------------------------------------
# Each part of the profile


def _project(deployment: Deployment, draft: _Draft, options: ImportOptions, fallback_name: str) -> None:
    compose_name = deployment.data.get("name") if isinstance(deployment.data, dict) else None
    candidates: list[tuple[str, str | None]] = []
    if options.name:
        candidates.append((options.name, "--name"))
    if isinstance(compose_name, str) and compose_name:
        candidates.append((compose_name, _where(deployment, "name")))
    if deployment.env.get("PROJECT_NAME"):
        candidates.append((deployment.env["PROJECT_NAME"], _env_where(deployment, "PROJECT_NAME")))
    candidates.append((fallback_name, "the deployment folder's name"))
    value, source = candidates[0]
    if _field_problem("project", "name", value) is None:
        _offer(draft, "project.name", value, source)
    else:
        cleaned = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
        cleaned = re.sub(r"^[^a-z]+", "", cleaned)[:40].rstrip("-") or "omnivoip"
        draft.set("project.name", cleaned, f"from {source}, made a valid Compose project name")
        draft.note("changed", "project.name", f"{value!r} -> {cleaned!r}: lowercase letters, digits and '-', starting with a letter", source)

    timezone = deployment.env.get("TZ")
    if timezone:
        _offer(draft, "project.timezone", timezone, _env_where(deployment, "TZ"))
    domain = deployment.env.get("FQDN")
    if domain:
        _offer(draft, "project.domain", domain, _env_where(deployment, "FQDN"))


def _host(draft: _Draft, options: ImportOptions) -> None:
    if options.host_kind:
        _offer(draft, "host.kind", options.host_kind, "--host-kind")
        return
    draft.set("host.kind", "vps", "assumed: a compose deployment does not record its host; `omnigen doctor` can tell")
    draft.note("changed", "host.kind", "assumed 'vps': a compose deployment does not record the kind of host; run `omnigen doctor` on it, or pass --host-kind")


def _ipv4(value: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        return None


def _ipam_configs(deployment: Deployment) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(network name, index, ipam config) for every ipam entry that names a subnet."""
    networks = deployment.data.get("networks") if isinstance(deployment.data, dict) else None
    for name, network in networks.items() if isinstance(networks, dict) else ():
        configs = (network.get("ipam") or {}).get("config") if isinstance(network, dict) else None
        for index, config in enumerate(configs if isinstance(configs, list) else []):
            if isinstance(config, dict) and "subnet" in config:
                yield str(name), index, config


def _network(deployment: Deployment, draft: _Draft, options: ImportOptions, published: list[_Published], asterisk: str | None) -> None:
    subnet = next(_ipam_configs(deployment), None)
    if subnet is not None:
        name, index, config = subnet
        source = _where(deployment, "networks", name, "ipam", "config", index, "subnet")
        _offer(draft, "network.subnet", str(config["subnet"]), source, default_note=f" (a private range: {RFC1918_HINT}, /16 to /27)")
        if config.get("gateway"):
            where = _where(deployment, "networks", name, "ipam", "config", index, "gateway")
            draft.note("dropped", "network gateway", f"{config['gateway']}: Docker gives the bridge the subnet's first address", where)

    # The address phones reach: the operator's word first, then what the deployment says.
    public: tuple[str, str] | None = (options.public_ip, "--public-ip") if options.public_ip else None
    looked_at: list[str] = []
    if public is None:
        for key in ("PUBLIC_IP", "EXTERNAL_IP", "OML_HOSTNAME"):
            value = deployment.env.get(key)
            location = deployment.env_location(key)
            if value and _ipv4(value) is not None:
                public = (value.strip(), f"{location} {key}")
                break
            looked_at.append(f"{key} is not set" if location is None else f"{key} ({location}) is {'empty' if not value else shown_value(key, value)}")
    pjsip = deployment.config("pjsip.conf")
    if pjsip is not None:
        for section in pjsip.conf.sections:
            setting = section.get("external_media_address")
            if setting is None:
                continue
            where = f"{pjsip.path}:{setting.line}"
            if _ipv4(setting.value) is not None:
                if public is None:
                    public = (setting.value, where)
            else:
                looked_at.append(f"external_media_address ({where}) is {setting.value!r}")
                draft.note(
                    "fixed",
                    "pjsip external_media_address",
                    f"{setting.value!r} is sent to phones literally (Asterisk does not expand environment variables): one-way audio; "
                    "the generated pjsip.conf advertises network.public_ip or network.bind_ip",
                    where,
                )
            break
    if public is not None:
        _offer(draft, "network.public_ip", public[0], public[1])

    bind: tuple[str, str] | None = (options.bind_ip, "--bind-ip") if options.bind_ip else None
    if bind is None and asterisk is not None:
        addresses = {entry.spec.host_ip or "0.0.0.0" for entry in published if entry.service == asterisk}
        entry = next((entry for entry in published if entry.service == asterisk), None)
        if len(addresses) == 1 and entry is not None:
            address = addresses.pop()
            bind = (address, entry.source)
            if address in {"0.0.0.0", "::", ""}:
                bind = ("0.0.0.0", entry.source)
                looked_at.append(f"the ports are published on all interfaces ({entry.source})")
    if bind is not None:
        _offer(draft, "network.bind_ip", bind[0], bind[1])
    chosen_public = draft.sections.get("network", {}).get("public_ip")
    chosen_bind = draft.sections.get("network", {}).get("bind_ip")
    if chosen_public is None and (chosen_bind is None or chosen_bind.value == "0.0.0.0"):
        raise ImportRefused(
            [
                InputIssue(
                    deployment.compose_path,
                    "network",
                    "cannot tell which address phones reach: " + ("; ".join(looked_at) or "no published SIP/RTP ports and no address variables"),
                    hint="rerun with --public-ip ADDRESS (the address behind NAT) or --bind-ip ADDRESS (the host's own address)",
                )
            ]
        )

    for entry in published:
        if entry.service in INTERNAL_SERVICES:
            draft.note(
                "closed",
                f"{entry.service} {entry.spec.raw}",
                "an internal service, reached by its name inside the compose network; published, it hands the data to anyone who guesses the password "
                "(network.expose_internal = true publishes it on 127.0.0.1 for debugging)",
                entry.source,
            )


def _capacity(deployment: Deployment, draft: _Draft, options: ImportOptions, published: list[_Published], asterisk: str | None) -> None:
    ranges = [
        entry
        for entry in published
        if entry.service == asterisk and entry.spec.protocol == "udp" and entry.spec.container_end > entry.spec.container_start
    ]
    rtp = max(ranges, key=lambda entry: entry.spec.container_end - entry.spec.container_start, default=None)
    if rtp is None:
        if options.calls is None:
            raise ImportRefused(
                [
                    InputIssue(
                        deployment.compose_path,
                        "capacity.concurrent_calls",
                        f"no RTP port range is published for Asterisk{f' (service {asterisk!r})' if asterisk else ''}, so the calls it carries are unknown",
                        hint="rerun with --calls N",
                    )
                ]
            )
        _offer(draft, "capacity.concurrent_calls", options.calls, "--calls")
        return
    start, end = rtp.spec.container_start, rtp.spec.container_end
    size = end - start + 1
    if rtp.spec.host_start is not None and (rtp.spec.host_start, rtp.spec.host_end) != (start, end):
        draft.note(
            "fixed",
            "RTP publishing",
            f"{rtp.spec.raw} maps host ports to other container ports; SDP carries the container port, so the generated compose publishes host == container",
            rtp.source,
        )
    _compare_ranges(deployment, draft, start, end)
    even_start = start + (start % 2)
    _offer(draft, "rtp.start", even_start, rtp.source)
    if even_start != start:
        draft.note("changed", "rtp.start", f"{start} -> {even_start}: Asterisk allocates RTP on even ports (RTCP on the next odd one)", rtp.source)
    if options.calls is not None:
        _offer(draft, "capacity.concurrent_calls", options.calls, "--calls")
        planned = _planned_rtp(draft, options.calls)
        draft.note(
            "changed",
            "RTP range",
            f"{start}-{end} ({size} ports) becomes {planned.start}-{planned.end} ({planned.size} ports) for the {options.calls} calls asked for",
            rtp.source,
        )
        return

    # Size the capacity to what the range really carries: the original reserved
    # neither headroom nor extra channels (supervisors), so every *_percent is 0.
    for name in _section_model("capacity").model_fields:
        if name.endswith("_percent"):
            draft.set(f"capacity.{name}", 0, "the imported range reserved none; raise it, and the range grows with it")
    carried = _most_calls_within(draft, end)
    if carried == 0:
        raise ImportRefused([InputIssue(rtp.source, "capacity.concurrent_calls", f"the RTP range {start}-{end} cannot carry a single call", hint="rerun with --calls N")])
    planned = _planned_rtp(draft, carried)
    draft.set("capacity.concurrent_calls", carried, f"what {start}-{end} ({size} ports) really carries")
    leftover = end - planned.end
    arithmetic = planned.arithmetic or f"{carried} calls need {planned.ports_needed} ports"
    draft.note(
        "changed",
        "capacity.concurrent_calls",
        f"{carried}: {start}-{end} is {size} ports, and the most calls that fit is {carried} ({arithmetic}), "
        f"so the range becomes {planned.start}-{planned.end}"
        + (f"; port {end} is dropped: an even last port has no RTCP partner" if leftover == 1 and end % 2 == 0 else "")
        + (f"; the {leftover} ports past {planned.end} carried no whole call" if leftover > 1 else ""),
        rtp.source,
    )


def _sizing_base(draft: _Draft) -> Profile:
    data = draft.data()
    data.setdefault("capacity", {})["concurrent_calls"] = 1
    try:
        return validate_profile(data, file="(imported profile)", text="", env={})
    except ProfileError as error:
        raise ImportRefused(error.issues) from None


def _planned_rtp(draft: _Draft, calls: int) -> RtpRange:
    base = _sizing_base(draft)
    profile = base.model_copy(update={"capacity": base.capacity.model_copy(update={"concurrent_calls": calls})})
    return port_plan(profile).ranges["asterisk"]


def _most_calls_within(draft: _Draft, end: int) -> int:
    """The most calls whose planned RTP range (the model's own arithmetic) ends at or before `end`."""
    base = _sizing_base(draft)

    def fits(calls: int) -> bool:
        profile = base.model_copy(update={"capacity": base.capacity.model_copy(update={"concurrent_calls": calls})})
        return port_plan(profile).ranges["asterisk"].end <= end

    return most_that_fits(1, 10001, fits) if fits(1) else 0


def _compare_ranges(deployment: Deployment, draft: _Draft, start: int, end: int) -> None:
    rtp_conf = deployment.config("rtp.conf")
    if rtp_conf is not None:
        general = rtp_conf.conf.section("general")
        conf_start = general.get("rtpstart") if general else None
        conf_end = general.get("rtpend") if general else None
        if conf_start and conf_end and (conf_start.value, conf_end.value) != (str(start), str(end)):
            draft.note(
                "fixed",
                "RTP range drift",
                f"rtp.conf says {conf_start.value}-{conf_end.value} but compose publishes {start}-{end}; the generated files share one range",
                f"{rtp_conf.path}:{conf_start.line}",
            )
    low, high = deployment.env.get("ACD_RTP_PORT_MIN"), deployment.env.get("ACD_RTP_PORT_MAX")
    if low and high and (low, high) != (str(start), str(end)):
        draft.note(
            "fixed",
            "RTP range drift",
            f".env says {low}-{high} but compose publishes {start}-{end}; the generated files share one range",
            _env_where(deployment, "ACD_RTP_PORT_MIN"),
        )


def _ports(deployment: Deployment, draft: _Draft, published: list[_Published], asterisk: str | None) -> set[int]:
    """Map SIP and the web UI onto ports.*; return the indexes into `published` that were reproduced."""
    reproduced: set[int] = set()
    sip_container = 5060
    pjsip = deployment.config("pjsip.conf")
    transport = pjsip.conf.section("transport-udp") if pjsip is not None else None
    bind = transport.get("bind") if transport is not None else None
    if bind is not None and bind.value.rpartition(":")[2].isdigit():
        sip_container = int(bind.value.rpartition(":")[2])
    for number, entry in enumerate(published):
        spec = entry.spec
        if entry.service == asterisk and spec.container_start == spec.container_end == sip_container:
            reproduced.add(number)
            host = spec.host_start or sip_container
            if "sip" not in draft.sections.get("ports", {}):
                _offer(draft, "ports.sip", host, entry.source)
                if host != sip_container:
                    draft.note("changed", "ports.sip", f"Asterisk now listens on {host} inside the container too (the original mapped {host} to {sip_container})", entry.source)
        elif entry.service == asterisk and spec.container_end > spec.container_start and spec.protocol == "udp":
            reproduced.add(number)
        elif entry.service == "nginx" and spec.container_start in (80, 443, 8080, 8443):
            reproduced.add(number)
            key = "ports.http" if spec.container_start in (80, 8080) else "ports.https"
            _offer(draft, key, spec.host_start or spec.container_start, entry.source)
    if any(entry.service == "nginx" for entry in published):
        draft.note("changed", "nginx", "listens on 8080/8443 inside its container (an unprivileged image); the host ports stay as they were")
    return reproduced


def _close_the_rest(draft: _Draft, published: list[_Published], reproduced: set[int]) -> None:
    for number, entry in enumerate(published):
        if number in reproduced or entry.service in INTERNAL_SERVICES:
            continue
        reason = CLOSED_PORTS.get((entry.service, entry.spec.container_start))
        if reason is None and entry.service in BEHIND_NGINX:
            reason = "reached through nginx or inside the compose network, never directly"
        draft.note("closed", f"{entry.service} {entry.spec.raw}", reason or "omnigen publishes only SIP, RTP and the web UI", entry.source)


def _images(deployment: Deployment, draft: _Draft) -> None:
    services = deployment.services
    pulled: set[str] = set()
    built: set[str] = set()
    for key, sources in IMAGE_SOURCES.items():
        for service_name in sources:
            service = services.get(service_name)
            if service is None:
                continue
            image = service.get("image")
            source = _where(deployment, "services", service_name, "image")
            if isinstance(image, str) and image:
                if key == "nginx" and "unprivileged" not in image:
                    draft.note(
                        "changed",
                        "images.nginx",
                        f"{image!r} runs as root and cannot start with all capabilities dropped; {_default('images.nginx')!r} runs unprivileged",
                        source,
                    )
                else:
                    _offer(draft, f"images.{key}", image, source)
                pulled.add(key)
                break
            build = service.get("build")
            context = build.get("context") if isinstance(build, dict) else build
            if isinstance(context, str):
                built.add(key)
                draft.note(
                    "manual",
                    f"build.{key}",
                    f"{service_name} is built from {context!r} (relative to the compose file); point build.source at the OmniVoIP "
                    f"checkout it belongs to (relative to the profile), or set build.{key} to that folder relative to the output folder, "
                    "or publish the image, set images."
                    f"{key} and build.prebuilt = true",
                    _where(deployment, "services", service_name, "build"),
                )
                break
    application = set(COMPONENT_CONTEXTS) & set(IMAGE_SOURCES)
    if pulled & application and not built & application:
        # The site runs published images: building them from a checkout instead would change what runs.
        draft.set("build.prebuilt", True, "the original pulls every OmniVoIP image it runs (images.*); none is built from source")


def _names(deployment: Deployment, draft: _Draft) -> None:
    for dotted, service, env_key in (
        ("database.name", "postgresql", "POSTGRES_DB"),
        ("database.user", "postgresql", "POSTGRES_USER"),
        ("storage.root_user", "minio", "MINIO_ROOT_USER"),
        ("storage.bucket", "django-app", "BUCKET_NAME"),
    ):
        value = deployment.service_env(service).get(env_key)
        if value:
            _offer(draft, dotted, value, _where(deployment, "services", service, "environment", env_key))
    app_env = deployment.service_env("django-app")
    minio_user = deployment.service_env("minio").get("MINIO_ROOT_USER")
    if app_env.get("MINIO_ACCESS_KEY") and minio_user and app_env["MINIO_ACCESS_KEY"] != minio_user:
        draft.note(
            "fixed",
            "MinIO credentials",
            "django-app used an access key (not shown) that nothing creates in MinIO; the generated app uses the MinIO root user",
            _where(deployment, "services", "django-app", "environment", "MINIO_ACCESS_KEY"),
        )


def _replicas(service: Mapping[str, Any]) -> Any:
    deploy = service.get("deploy")
    return deploy.get("replicas") if isinstance(deploy, dict) else None


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _workers(deployment: Deployment, draft: _Draft) -> None:
    services = deployment.services
    celery = services.get("celery-worker", {})
    if (replicas := _replicas(celery)) is not None:
        _offer(draft, "workers.celery", _as_int(replicas), _where(deployment, "services", "celery-worker", "deploy", "replicas"))
    command = celery.get("command")
    text = " ".join(map(str, command)) if isinstance(command, list) else str(command or "")
    if match := _CONCURRENCY.search(text):
        _offer(draft, "workers.celery_concurrency", int(match.group(1)), _where(deployment, "services", "celery-worker", "command"))
    dialer = services.get("dialer-worker", {})
    if (replicas := _replicas(dialer)) is not None:
        _offer(draft, "workers.dialer", _as_int(replicas), _where(deployment, "services", "dialer-worker", "deploy", "replicas"))


def _secrets(deployment: Deployment, draft: _Draft) -> dict[str, str]:
    """Real secrets are kept; placeholders, empty and unusable values are left to be generated."""
    kept: dict[str, str] = {}
    services = deployment.services
    for name in SECRET_NAMES:
        found: tuple[str, str] | None = None
        for service_name, env_key in SECRET_SOURCES.get(name, ()):
            value = deployment.service_env(service_name).get(env_key)
            if value is not None:
                found = (value, _where(deployment, "services", service_name, "environment", env_key))
                break
        if found is None and name == "redis_password":
            command = services.get("redis", {}).get("command")
            text = " ".join(map(str, command)) if isinstance(command, list) else str(command or "")
            if match := _REQUIREPASS.search(text):
                found = (match.group(1).strip("\"'"), _where(deployment, "services", "redis", "command"))
        if found is None:
            for env_key in SECRET_ENV_KEYS.get(name, ()):
                if env_key in deployment.env:
                    found = (deployment.env[env_key], _env_where(deployment, env_key) or env_key)
                    break
        if found is None:
            draft.note("generated", name, "not in the deployment; generated", None)
            continue
        value, source = found
        if not value:
            draft.note("generated", name, "empty in the deployment; generated", source)
            continue
        try:
            Secrets.model_validate({name: value})
        except ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            draft.note("generated", name, f"not imported ({reason}); a new random one is generated", source)
            continue
        kept[name] = value
        draft.note("kept", name, "imported into the secrets sidecar (value not shown)", source)
    return kept


NAMESPACE_KEYS = frozenset({"network_mode", "userns_mode", "pid", "ipc", "uts", "cgroup"})


def _forbidden_value(key: str, value: Any) -> bool:
    """Whether a service's `key: value` is one the generated stack never has."""
    if value in (None, False, [], {}, ""):
        return False
    if key in NAMESPACE_KEYS:
        # Their own namespace (bridge, private, default...) is what the generated stack does too.
        text = str(value).strip().lower()
        return text == "host" or text.startswith(("service:", "container:"))
    return True


def _forbidden(deployment: Deployment, draft: _Draft) -> None:
    for name, service in deployment.services.items():
        for key, why in FORBIDDEN.items():
            if _forbidden_value(key, service.get(key)):
                draft.note("dropped", f"{name} {key}", f"{service[key]!r}: {why}", _where(deployment, "services", name, key))
        options = service.get("security_opt")
        if isinstance(options, list):
            for index, option in enumerate(options):
                if not str(option).startswith("no-new-privileges"):
                    draft.note("dropped", f"{name} security_opt", f"{option!r}: the default seccomp/AppArmor confinement is kept", _where(deployment, "services", name, "security_opt", index))
    named = sorted(name for name, service in deployment.services.items() if "container_name" in service)
    if named:
        draft.note(
            "dropped",
            "container_name",
            f"on {', '.join(named)}: Compose names containers <project>-<service>-<n>, which lets workers scale to several replicas",
            _where(deployment, "services", named[0], "container_name"),
        )


def _configs(deployment: Deployment, draft: _Draft) -> None:
    for config in deployment.configs:
        expected = posixpath.join(ASTERISK_CONFIG_DIR, config.name) if config.name != "rtpengine.conf" else "/etc/rtpengine/rtpengine.conf"
        if config.target != expected:
            draft.note(
                "fixed",
                f"{config.name} mount",
                f"mounted at {config.target}, where {'Asterisk' if config.name != 'rtpengine.conf' else 'rtpengine'} never reads it; "
                f"the generated compose mounts it at {expected}",
                config.path,
            )
    pjsip = deployment.config("pjsip.conf")
    if pjsip is not None:
        nets = [setting.value for section in pjsip.conf.sections for setting in section.get_all("local_net")]
        if nets:
            draft.note(
                "changed",
                "pjsip local_net",
                f"{', '.join(dict.fromkeys(nets))} -> network.subnet only: phones on the LAN reach Asterisk through the published ports, "
                "so they must get the advertised address",
                pjsip.path,
            )


def _config_content_left_behind(deployment: Deployment, draft: _Draft, compiled: Compiled) -> None:
    """pjsip.conf sections and rtp.conf settings of the original that the generated configs do not have."""
    pjsip = deployment.config("pjsip.conf")
    if pjsip is not None:
        ours = {section.name for section in parse_conf(compiled.files["asterisk/pjsip.conf"]).sections}
        extra = [section for section in pjsip.conf.sections if section.name not in ours]
        if extra:
            names = ", ".join(dict.fromkeys(section.name for section in extra))
            draft.note("manual", "pjsip.conf sections", f"{names}: not in the generated pjsip.conf (endpoints, trunks and agents are yours to add)", f"{pjsip.path}:{extra[0].line}")
    rtp_conf = deployment.config("rtp.conf")
    general = rtp_conf.conf.section("general") if rtp_conf is not None else None
    if rtp_conf is not None and general is not None:
        generated = parse_conf(compiled.files["asterisk/rtp.conf"]).section("general")
        ours = {setting.key for setting in generated.settings} if generated is not None else set()
        extra_settings = [setting for setting in general.settings if setting.key not in ours]
        if extra_settings:
            names = ", ".join(setting.key for setting in extra_settings)
            draft.note("manual", "rtp.conf settings", f"{names}: not in the generated rtp.conf", f"{rtp_conf.path}:{extra_settings[0].line}")


def _other_mounts_and_services(deployment: Deployment, draft: _Draft) -> None:
    config_targets = {(config.service, config.target) for config in deployment.configs}
    for name, service in deployment.services.items():
        if name in UNUSED_SERVICES:
            draft.note("dropped", f"service {name}", UNUSED_SERVICES[name], _where(deployment, "services", name))
            continue
        if name not in GENERATED_SERVICES:
            draft.note("manual", f"service {name}", "not part of the generated stack", _where(deployment, "services", name))
            continue
        volumes = service.get("volumes")
        for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
            spec = volume if isinstance(volume, str) else ""
            source, _, rest = spec.partition(":")
            target = rest.split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                continue  # a named volume: reported with the data
            carries_configs = any(
                service == name and (config_target == target or config_target.startswith(target.rstrip("/") + "/")) for service, config_target in config_targets
            )
            if carries_configs or (name == "nginx" and target in {"/etc/nginx/nginx.conf", "/etc/nginx/certs"}):
                continue  # reported with the configs, generated (nginx.conf) or mounted the same way (certs)
            draft.note("manual", f"{name} mount", f"{source} -> {target} is not carried over", _where(deployment, "services", name, "volumes", index))


def _environment_left_behind(deployment: Deployment, draft: _Draft, compiled: Compiled) -> None:
    """Container variables the original services set and the generated ones do not."""
    generated = deployment_from_memory(compiled.files)  # environment and env_file (secrets/<service>.env)
    for name in sorted(deployment.services):
        if name not in generated.services:
            continue
        theirs = deployment.service_env(name)
        ours = generated.service_env(name)
        missing = [key for key in theirs if key not in ours]
        if missing:
            shown = ", ".join(f"{key}={shown_value(key, theirs[key])}" for key in missing)
            draft.note("manual", f"{name} environment", f"{shown}: not set by the generated compose", _where(deployment, "services", name, "environment"))


def _unused_env(deployment: Deployment, draft: _Draft, generated_keys: set[str]) -> None:
    referenced = {name for raw in deployment.raw_strings.values() for name in _ENV_REFERENCE.findall(raw)}
    unused = sorted(key for key in deployment.env if key not in referenced and key not in generated_keys)
    if unused:
        draft.note("manual", ".env keys", f"{len(unused)} keys no service of the original used are not imported ({', '.join(unused[:6])}{', ...' if len(unused) > 6 else ''})", deployment.env_path)


# ---------------------------------------------------------------------------
# The running site's data and credentials


# Compose's rules for project names (compose-go's NormalizeProjectName and the check on names
# given with -p or COMPOSE_PROJECT_NAME), as the Compose binary applies them.
_PROJECT_NAME_CHARACTERS = re.compile(r"[a-z0-9_-]")
_VALID_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PROJECT_NAME_RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit"


def normalize_project_name(text: str) -> str:
    """What Compose makes of a `name:` or a folder name: lowercased, other characters dropped, no leading '-' or '_'."""
    return "".join(_PROJECT_NAME_CHARACTERS.findall(text.lower())).lstrip("_-")


@dataclass(frozen=True)
class ComposeProject:
    """The project name the original stack runs under, which prefixes its volumes' real names."""

    name: str
    source: str


def compose_project(deployment: Deployment, options: ImportOptions, folder: str) -> ComposeProject:
    """The project name as Compose picks it: COMPOSE_PROJECT_NAME (from .env), else `name:`, else the
    compose file's folder; the operator's --compose-project first, for a stack started with -p."""
    given = options.compose_project
    if given is not None:
        return ComposeProject(given, "--compose-project")
    from_env = deployment.env.get("COMPOSE_PROJECT_NAME")
    if from_env:
        location = _env_where(deployment, "COMPOSE_PROJECT_NAME") or ".env COMPOSE_PROJECT_NAME"
        if not _VALID_PROJECT_NAME.match(from_env):
            raise ImportRefused(
                [InputIssue(location, "COMPOSE_PROJECT_NAME", f"Compose refuses this project name: {_PROJECT_NAME_RULE}", got=repr(from_env), hint="pass --compose-project with the name the stack runs under")]
            )
        return ComposeProject(from_env, location)
    name = deployment.data.get("name") if isinstance(deployment.data, dict) else None
    candidates = [(name, f"`name:` ({_where(deployment, 'name')})")] if isinstance(name, str) and name else []
    candidates.append((folder, f"the folder name of {deployment.compose_path}"))
    raw, source = candidates[0]
    normalized = normalize_project_name(raw)
    if not normalized:
        raise ImportRefused(
            [InputIssue(deployment.compose_path, "name", f"Compose cannot make a project name of {raw!r} ({_PROJECT_NAME_RULE})", hint="pass --compose-project with the name the stack runs under")]
        )
    return ComposeProject(normalized, source if normalized == raw else f"{source}, as Compose normalizes {raw!r}")


@dataclass
class _VolumeUse:
    service: str
    target: str
    where: str


def _volume_uses(deployment: Deployment, declared: Mapping[str, Any]) -> dict[str, list[_VolumeUse]]:
    """Each declared volume's mounts, in service order."""
    uses: dict[str, list[_VolumeUse]] = {}
    for name, service in deployment.services.items():
        volumes = service.get("volumes")
        for index, entry in enumerate(volumes if isinstance(volumes, list) else []):
            if isinstance(entry, str):
                parts = split_volume(entry)
                source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            elif isinstance(entry, dict) and entry.get("type", "volume") == "volume":
                source, target = str(entry.get("source") or ""), str(entry.get("target") or "")
            else:
                continue
            if source in declared:
                uses.setdefault(source, []).append(_VolumeUse(name, target, _where(deployment, "services", name, "volumes", index)))
    return uses


def _real_volume_name(project: str, key: str, definition: Any) -> str:
    """The Docker volume a declared volume is: its `name:`, else the key (external) or <project>_<key>."""
    definition = definition if isinstance(definition, dict) else {}
    external = definition.get("external")
    if isinstance(external, dict) and isinstance(external.get("name"), str):  # the legacy `external: {name: ...}`
        return str(external["name"])
    if isinstance(definition.get("name"), str) and definition["name"]:
        return str(definition["name"])
    return key if external is True or str(external).lower() == "true" else f"{project}_{key}"


def _our_volume(key: str, uses: list[_VolumeUse]) -> str | None:
    """The generated stack's volume that holds the same data: mounted at the same place by the same service, else of the same name."""
    for ours, mounts in VOLUME_MOUNTS.items():
        if any((use.service, use.target.rstrip("/")) in mounts for use in uses):
            return ours
    return key if key in VOLUME_KEYS else None


def _volumes(deployment: Deployment, draft: _Draft, options: ImportOptions, folder: str) -> None:
    """Adopt every named volume of the original whose data the generated stack keeps in one of its own."""
    declared = deployment.data.get("volumes") if isinstance(deployment.data, dict) else None
    if not isinstance(declared, dict) or not declared:
        return  # no data of its own: the project name does not matter
    project = compose_project(deployment, options, folder)
    uses = _volume_uses(deployment, declared)
    draft.note(
        "data",
        "compose project",
        f"{project.name!r}, from {project.source}: its volumes are named {project.name}_<volume>; if the stack was started "
        "with -p or COMPOSE_PROJECT_NAME set in the shell, rerun with --compose-project NAME",
    )
    for key, definition in declared.items():
        real = _real_volume_name(project.name, str(key), definition)
        where = _where(deployment, "volumes", key)
        mounts = uses.get(key, [])
        if not mounts:
            draft.note("data", real, "no longer used: declared, but no service mounts it, so Compose never created it", where)
            continue
        shown = ", ".join(f"{use.service}:{use.target}" for use in mounts)
        ours = _our_volume(str(key), mounts)
        if ours is None:
            draft.note(
                "data",
                real,
                f"no longer used: mounted at {shown}, which the generated stack does not have; its data stays in the volume "
                f"(`docker volume rm {real}` once you no longer need it)",
                mounts[0].where,
            )
            continue
        taken = draft.sections.get("volumes", {}).get(ours)
        if taken is not None:
            draft.note("data", real, f"no longer used: mounted at {shown}, where volumes.{ours} = {taken.value!r} is already reused; its data stays in the volume", mounts[0].where)
            continue
        draft.set(f"volumes.{ours}", real, f"the original's {key} (compose project {project.name})")
        targets = ", ".join(f"{service}:{target}" for service, target in VOLUME_MOUNTS[ours])
        draft.note("data", real, f"reused as volumes.{ours} ({targets}), mounted by its real name as an external volume", where)


def _new_volumes(draft: _Draft, profile: Profile) -> None:
    adopted = profile.volumes.adopted()
    for key in VOLUME_KEYS:
        if key not in adopted:
            targets = ", ".join(f"{service}:{target}" for service, target in VOLUME_MOUNTS[key])
            draft.note("data", f"{profile.project.name}_{key}", f"new and empty ({targets}): the original has no volume for it")


# Where each database's password and user are: (secret, profile.database field).
_DATABASE_CREDENTIALS = {"postgresql": ("postgres_password", "user")}


def _database_steps(draft: _Draft, profile: Profile, kept_secrets: Mapping[str, str]) -> None:
    """An adopted database keeps the password it was initialised with: say which users need the new one, and how."""
    adopted = profile.volumes.adopted()
    needing = [
        (service, getattr(profile.database, user_field), adopted[DATABASE_VOLUMES[service]])
        for service, (secret, user_field) in _DATABASE_CREDENTIALS.items()
        if DATABASE_VOLUMES[service] in adopted and secret not in kept_secrets
    ]
    services = " ".join(service for service in DATABASE_VOLUMES if DATABASE_VOLUMES[service] in adopted)
    for service, user, volume in needing:
        draft.note(
            "steps",
            f"database user {user!r} ({service})",
            f"must get the new password: the data in {volume} was initialised with the old one, and PostgreSQL keeps it "
            f"(the image applies POSTGRES_PASSWORD only to an empty data directory); in the output folder run "
            f"`docker compose up --detach --wait {services}`, then `sh {DATABASE_PASSWORD_SCRIPT}` (ALTER ROLE inside the "
            "container, the password read from its environment, never on a command line), then `docker compose up --detach --wait`",
        )


# ---------------------------------------------------------------------------
# Assembling the result


def _profile_text(draft: _Draft, origin: str, secrets_name: str) -> str:
    import tomlkit

    document = tomlkit.document()
    document.add(tomlkit.comment(f"Imported by omnigen {__version__} from {origin}."))
    document.add(tomlkit.comment("Each value says where it came from; `omnigen import` reported what changed and why."))
    document.add(tomlkit.comment(f"Secrets are in {secrets_name} (mode 0600): keep it out of version control."))
    document.add("schema_version", SCHEMA_VERSION)
    for section in Profile.model_fields:
        keys = draft.sections.get(section)
        if not keys:
            continue
        table = tomlkit.table()
        model = Profile.model_fields[section].annotation
        order = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else list(keys)
        for key in sorted(keys, key=order.index):
            item = keys[key]
            value = tomlkit.item(item.value)
            if item.source:
                value.comment(item.source)
            table.add(key, value)
        document.add(tomlkit.nl())
        document.add(section, table)
    return tomlkit.dumps(document)


def _env_changes(deployment: Deployment, compiled: Compiled) -> list[EnvChange]:
    changes = []
    for section in compiled.plan.env:
        for variable in section.variables:
            old = deployment.env.get(variable.key)
            if old is None or old == variable.value:
                continue
            reason = ENV_REASONS.get(variable.key, "computed from the profile")
            if variable.secret and not any(marker in variable.key for marker in ("URL", "BACKEND")):
                reason = "see the secrets above"
            changes.append(EnvChange(variable.key, old, variable.value, variable.secret, reason))
    return changes


# Each option and the profile key it sets.
OPTION_KEYS = {"name": "project.name", "public_ip": "network.public_ip", "bind_ip": "network.bind_ip", "host_kind": "host.kind", "calls": "capacity.concurrent_calls"}


def _check_options(options: ImportOptions) -> None:
    """The operator's own values are held to the model before anything is read."""
    issues = []
    for option, dotted in OPTION_KEYS.items():
        value = getattr(options, option)
        if value is None or option == "name":  # a name is made valid, as names found in the deployment are
            continue
        section, key = dotted.split(".")
        if problem := _field_problem(section, key, value):
            issues.append(InputIssue(f"--{option.replace('_', '-')}", dotted, problem, got=repr(value)))
    if options.compose_project is not None and not _VALID_PROJECT_NAME.match(options.compose_project):
        issues.append(InputIssue("--compose-project", "", f"not a Compose project name: {_PROJECT_NAME_RULE}", got=repr(options.compose_project)))
    if issues:
        raise ImportRefused(issues)


def import_deployment(
    deployment: Deployment,
    options: ImportOptions,
    *,
    origin: str,
    fallback_name: str,
    secrets_name: str,
    token: TokenFactory = random_token,
    compose_folder: str | None = None,
) -> Imported:
    """Turn a loaded deployment into a profile, a sidecar and the notes that explain them.

    `compose_folder` is the name of the folder the compose file is in (Compose's default project
    name); without it, the last part of the deployment's project folder."""
    if errors := [problem for problem in deployment.problems if problem.severity == "error"]:
        raise ImportRefused(
            [InputIssue(problem.location.file, "", problem.message, line=problem.location.line, hint="fix it so Docker Compose can read the deployment") for problem in errors]
        )
    _check_options(options)
    draft = _Draft()
    published = _published(deployment)
    asterisk = next((config.service for config in deployment.configs if config.name in {"rtp.conf", "pjsip.conf"}), None)
    asterisk = asterisk or ("asterisk" if "asterisk" in deployment.services else None)

    _project(deployment, draft, options, fallback_name)
    _host(draft, options)
    _network(deployment, draft, options, published, asterisk)
    reproduced = _ports(deployment, draft, published, asterisk)
    _capacity(deployment, draft, options, published, asterisk)
    _close_the_rest(draft, published, reproduced)
    _images(deployment, draft)
    _names(deployment, draft)
    _workers(deployment, draft)
    kept_secrets = _secrets(deployment, draft)
    folder = compose_folder if compose_folder is not None else posixpath.basename(posixpath.normpath(deployment.project_dir))
    _volumes(deployment, draft, options, folder)
    _forbidden(deployment, draft)
    _configs(deployment, draft)
    _other_mounts_and_services(deployment, draft)

    profile_text = _profile_text(draft, origin, secrets_name)
    checked = validate(draft.data(), file="(imported profile)", text=profile_text, env={})
    profile = checked.profile
    compiled = compile_profile(profile, Secrets.model_validate(kept_secrets), token, layout=checked.layout)
    _new_volumes(draft, profile)
    _database_steps(draft, profile, kept_secrets)
    _environment_left_behind(deployment, draft, compiled)
    _config_content_left_behind(deployment, draft, compiled)
    _unused_env(deployment, draft, set(compiled.plan.env_map))
    secrets_text = sidecar_text(None, compiled.secrets, tuple(name for name in SECRET_NAMES if getattr(compiled.secrets, name) is not None))
    return Imported(
        profile_text=profile_text,
        profile=profile,
        secrets_text=secrets_text,
        compiled=compiled,
        notes=tuple(_sorted_notes(draft.notes)),
        env_changes=tuple(_env_changes(deployment, compiled)),
        original_findings=tuple(run_rules(deployment).findings),
    )


def _sorted_notes(notes: list[Note]) -> Iterator[Note]:
    order: list[NoteKind] = list(NOTE_KINDS)
    yield from sorted(notes, key=lambda note: order.index(note.kind))


def render_report(imported: Imported, *, profile_path: str, secrets_path: str) -> str:
    """The report the command prints: every note by kind, the .env values that change, the lint summary."""
    lines = [f"wrote {profile_path} and {secrets_path} (mode 0600)"]
    for kind, meaning in NOTE_KINDS.items():
        notes = imported.notes_of(kind)
        if not notes:
            continue
        lines.append("")
        lines.append(f"{kind} ({len(notes)}): {meaning}")
        lines.extend(f"  {note.render()}" for note in notes)
    if imported.env_changes:
        lines.append("")
        lines.append(f".env values that change ({len(imported.env_changes)}), secrets masked:")
        for change in imported.env_changes:
            # The plan knows which of its keys hold no secret; the old value is theirs, so a URL in it still loses its credentials.
            old, new = (HIDDEN, HIDDEN) if change.secret else (shown_value(change.key, change.old, plain_key=True), repr(change.new))
            lines.append(f"  {change.key}: {old} -> {new}: {change.reason}")
    errors = sum(1 for finding in imported.original_findings if finding.severity == "error")
    warnings = len(imported.original_findings) - errors
    lines.append("")
    lines.append(
        f"the original deployment has {errors} errors and {warnings} warnings under omnigen's rules (`omnigen lint` lists them); "
        f"the generated one passed the same rules at import. Next: omnigen build {profile_path}"
    )
    return "\n".join(lines) + "\n"

