"""Stage 1: load and validate a profile (TOML file + OMNIGEN_* environment overrides).

The models here are the contract with users: every field is frozen, unknown
keys are refused, and every field carries a description that feeds
`omnigen schema` and the docs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from omnigen.catalog import hostkinds
from omnigen.catalog.addressing import dynamic_addresses_available, dynamic_addresses_needed
from omnigen.errors import InputFileError, InputIssue, KeyedProblem, ProfileError, UsageError
from omnigen.inputs.fingerprint import ENV_PREFIX, SECRETS_SUFFIX, env_overrides, sidecar_path
from omnigen.inputs.inputfile import MAX_TOML_BYTES, read_input
from omnigen.inputs.placeholders import PLACEHOLDER_PATTERN
from omnigen.inputs.reachability import bind_ip_refusal, public_ip_refusal
from omnigen.inputs.tomlpos import key_lines, parse_toml

SCHEMA_VERSION = 2
# host.memory: a size as Docker reads it (sizing.memory_mib turns it into MiB).
MEMORY_PATTERN = r"^[1-9][0-9]{0,6}(?:M|MB|MiB|G|GB|GiB)$"
ENV_DELIMITER = "__"

HostKind = Literal["vps", "bare-metal", "lxc-unprivileged", "lxc-privileged", "docker-desktop", "rootless"]

# Image references: registry/path:tag with an explicit, non-"latest" tag (CIS 5.28).
IMAGE_PATTERN = (
    r"^(?:[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?$"
)
# Build contexts are relative paths from the output folder; no spaces, quotes or `$`.
BUILD_PATH_PATTERN = r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?$"
# The checkout: relative to the profile or absolute; the same characters, so the derived contexts stay safe in YAML.
SOURCE_PATH_PATTERN = r"^/?[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?$"
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
HOSTNAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
TIMEZONE_PATTERN = r"^(?:UTC|[A-Z][A-Za-z_]+(?:/[A-Za-z0-9_+-]+){1,2})$"

# Editors validate with the JSON Schema; Taplo's "ipv4" format rejects 0.0.0.0,
# which is a legitimate bind address, so bind_ip is described by a pattern instead.
IPV4_ANY_ADDRESS_SCHEMA = {
    "type": "string",
    "pattern": r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
}
PRIVATE_BLOCKS = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
ASTERISK_UNREADABLE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]|^>")
# kamailio.cfg's `#!defenvs WEBRTC_AUTH_SECRET` puts the variable's value between double quotes as it is:
# a `"` ends the string (Kamailio refuses the file) and a backslash starts an escape (Kamailio would hold
# another key than the app that issues the credentials).
KAMAILIO_UNREADABLE = re.compile(r'["\\\x00-\x1f\x7f]')



class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_silent_retyping(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `calls = 50.0` as 50 and `webrtc = 1` as true. A TOML
        # number where a count belongs, or a number where a switch belongs, is a mistake
        # to point out, not to guess at. (Environment overrides arrive as strings and
        # are still parsed.)
        # A quoted "50" is refused too: TOML says it is text. Environment overrides are always
        # text, so _GivenEnvSource converts them before they get here.
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        kind = _scalar_kind(field.annotation)
        if kind is int and isinstance(value, (bool, float)):
            raise ValueError("must be a whole number, written without a decimal point")
        if kind is int and isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
            raise ValueError(f'must be a whole number, written without quotes: {value.strip()}, not "{value.strip()}"')
        if kind is bool and isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError("must be true or false")
        if kind is bool and isinstance(value, str):
            raise ValueError("must be true or false, written without quotes")
        return value


def _scalar_kind(annotation: Any) -> type | None:
    """int or bool for the fields that hold one (also when optional), else None."""
    for kind in (int, bool):
        if annotation is kind or annotation == (kind | None):
            return kind
    return None


def _refuse_host_network(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "host":
        raise ValueError(
            'network mode "host" is refused: it shares the host network namespace, which unprivileged '
            "LXC, rootless Docker and Docker Desktop cannot do and which removes isolation everywhere; "
            'use mode = "bridge" (RTP is published with host port == container port, so media works), or for '
            'large capacity mode = "ipvlan" (Asterisk gets its own LAN address and nothing of it is published)'
        )
    return value


def _check_image(value: str) -> str:
    if value.rsplit(":", 1)[-1].split("@", 1)[0] == "latest":
        raise ValueError("the tag 'latest' is not a pinned version; name an explicit release tag (e.g. redis:7.4.1-alpine)")
    return value


ImageRef = Annotated[str, Field(pattern=IMAGE_PATTERN, max_length=255), AfterValidator(_check_image)]
def _check_build_path(value: str) -> str:
    """A build context names the image's source folder: never a parent of the output folder, never `/`.

    Docker sends the whole context to the build; `..` or `../../..` would send the output
    folder (its .env and secrets included) or everything up to `/`.
    """
    parts = value.rstrip("/").split("/")
    if parts[0] == ".":
        parts = parts[1:]
    if not parts or any(part in ("", ".") for part in parts):
        raise ValueError("a build context needs a folder name, without empty or `.` parts (e.g. ../../src/backend)")
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    if ups == len(parts):
        raise ValueError(
            "names a parent of the output folder: Docker would send that whole folder (the output's .env and secrets included) "
            "or everything up to / as the build context; name the image's source folder instead (e.g. ../../src/backend)"
        )
    if ".." in parts[ups:]:
        raise ValueError("`..` after a folder name: write the path without it (e.g. ../src/backend, not src/../../src/backend)")
    return value


BuildPath = Annotated[str, Field(pattern=BUILD_PATH_PATTERN, max_length=255), AfterValidator(_check_build_path)]


def _check_bucket(value: str) -> str:
    """S3 bucket naming rules as MinIO applies them (minio/pkg s3utils CheckValidBucketNameStrict)."""
    if ".." in value or ".-" in value or "-." in value:
        raise ValueError("S3 bucket names cannot hold `..`, `.-` or `-.` (MinIO refuses them); use single dots or hyphens between letters and digits")
    if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", value):
        raise ValueError("S3 bucket names cannot look like an IP address")
    if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3")):
        raise ValueError("S3 reserves bucket names starting with xn-- or sthree- and ending with -s3alias or --ol-s3")
    return value


SourcePath = Annotated[str, Field(pattern=SOURCE_PATH_PATTERN, max_length=1024)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]


class Project(Frozen):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,39}$",
        examples=["acme"],
        description="Compose project name and container prefix: lowercase letters, digits and '-', starting with a letter.",
    )
    domain: str | None = Field(
        default=None,
        examples=["pbx.example.com"],
        pattern=HOSTNAME_PATTERN,
        max_length=253,
        description="Public DNS name of the web UI (nginx server_name, Django ALLOWED_HOSTS). Optional.",
    )
    timezone: str = Field(default="UTC", examples=["Europe/Madrid"], pattern=TIMEZONE_PATTERN, description="IANA time zone of every service (TZ).")


class Host(Frozen):
    kind: HostKind = Field(
        default="vps",
        description="Where Docker runs: vps, bare-metal, lxc-unprivileged, lxc-privileged, docker-desktop or rootless.",
    )
    userland_proxy: bool = Field(
        default=True,
        description=(
            'Whether the Docker daemon runs docker-proxy for published ports (daemon.json "userland-proxy", default true). '
            "Compose cannot set it; it decides the port budget (docs/capacity.md). Rootless Docker cannot turn it off."
        ),
    )
    low_ports: Literal["refuse", "remap", "allow"] = Field(
        default="refuse",
        description=(
            "Rootless Docker only: what to do with host ports below 1024. refuse: an error; remap: publish them 8000 "
            "higher (80 -> 8080); allow: the host's net.ipv4.ip_unprivileged_port_start has been lowered."
        ),
    )

    cpus: float | None = Field(
        default=None,
        examples=[1, 4, 1.5],
        gt=0,
        le=1024,
        description=(
            "CPUs the Docker engine can use: nproc, or the container's CPU limit on LXC. No container's cpus limit exceeds it "
            "(dockerd refuses one that does) and the stack's CPU reservations must fit in it. Default per host.kind: "
            + ", ".join(f"{kind} {facts.default_cpus:g}" for kind, facts in hostkinds.HOST_KINDS.items())
            + ". `omnigen doctor PROFILE` compares it with the machine."
        ),
    )
    memory: str | None = Field(
        default=None,
        examples=["2G", "1536M"],
        pattern=MEMORY_PATTERN,
        description=(
            "Memory of the host (MemTotal, or the container's memory limit on LXC), e.g. 2G or 1536M (M and G are MiB and GiB). "
            "No memory limit exceeds it, and the stack's reservations plus docker-proxy and the system's own must fit in it. "
            "Default per host.kind: "
            + ", ".join(f"{kind} {facts.default_memory_mib // 1024}G" for kind, facts in hostkinds.HOST_KINDS.items())
            + "."
        ),
    )

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus_is_a_number(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number of CPUs such as 1, 2 or 1.5")
        return value

    @model_validator(mode="after")
    def _userland_proxy_possible(self) -> Host:
        if refusal := hostkinds.userland_proxy_refusal(self.kind, self.userland_proxy):
            raise ValueError(refusal)
        return self


InterfaceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")]


def _address_as_text(value: Any) -> Any:
    """Addresses are written as strings: pydantic would read `true` or `3405803786` as an IPv4 address."""
    if isinstance(value, bool | int | float | bytes):
        raise ValueError('write the address as a quoted string, e.g. "203.0.113.10" or "10.22.22.0/24"')
    return value


def _network_address(value: Any) -> Any:
    """A subnet written with a host's address (10.22.22.5/24) names the network it means: say which."""
    if isinstance(value, str):
        try:
            ipaddress.IPv4Network(value)
        except ValueError:
            try:
                network = ipaddress.IPv4Network(value, strict=False)
            except ValueError:
                return value  # not a network at all: pydantic's own message says so
            raise ValueError(
                f'{value} has host bits set: a subnet is written with its network address; write "{network}"'
            ) from None
    return value


class Lan(Frozen):
    """Where the media container sits in network.mode = "ipvlan" or "macvlan"."""

    parent: InterfaceName = Field(examples=["eth0"], description="Host interface the ipvlan/macvlan network hangs off (e.g. eth0, ens18, bond0.100).")
    subnet: ipaddress.IPv4Network = Field(examples=["192.168.1.0/24"], description="The LAN's IPv4 subnet, as the parent interface sees it (e.g. 192.168.1.0/24).")
    gateway: ipaddress.IPv4Address = Field(examples=["192.168.1.1"], description="The LAN's default gateway; Asterisk's default route goes through it.")
    address: ipaddress.IPv4Address = Field(
        examples=["192.168.1.50"],
        description="Asterisk's own address on the LAN: a free address outside the DHCP pool that phones and trunks reach directly."
    )

    _addresses_are_text = field_validator("subnet", "gateway", "address", mode="before")(_address_as_text)
    _subnet_is_a_network = field_validator("subnet", mode="before")(_network_address)

    @model_validator(mode="after")
    def _addresses_in_subnet(self) -> Lan:
        for key, address in (("gateway", self.gateway), ("address", self.address)):
            if address not in self.subnet or address in (self.subnet.network_address, self.subnet.broadcast_address):
                raise ValueError(f"network.lan.{key}: {address} is not a host address of network.lan.subnet {self.subnet}; use one inside it")
        if self.address == self.gateway:
            raise ValueError("network.lan.address: Asterisk's address cannot be the gateway's; pick a free address on the LAN")
        return self


class Network(Frozen):
    mode: Annotated[Literal["bridge", "ipvlan", "macvlan"], BeforeValidator(_refuse_host_network)] = Field(
        default="bridge",
        description=(
            'Container networking. "bridge": everything on the compose network, SIP and RTP published on bind_ip. '
            '"ipvlan" / "macvlan": Asterisk also gets its own address on the LAN (network.lan), so its SIP and RTP are '
            'not published at all: for large capacity; not on rootless or Docker Desktop. "host" is refused (docs/capacity.md).'
        ),
    )
    subnet: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.22.22.0/24"),
        description="IPv4 subnet of the compose network (prefix /16 to /27).",
    )
    public_ip: ipaddress.IPv4Address | None = Field(
        default=None,
        description="Address advertised in SIP/SDP when the host is behind NAT. Optional.",
        examples=["203.0.113.10"],
    )
    bind_ip: Annotated[ipaddress.IPv4Address, WithJsonSchema(IPV4_ANY_ADDRESS_SCHEMA)] = Field(
        default=ipaddress.IPv4Address("0.0.0.0"),
        examples=["192.168.1.10"],
        description="Host IPv4 address that public ports (SIP, RTP, HTTP/S) are published on.",
    )
    expose_internal: bool = Field(
        default=False,
        description="Publish PostgreSQL, Redis and MinIO on 127.0.0.1 for debugging. Never on other addresses.",
    )
    lan: Lan | None = Field(
        default=None,
        description='The LAN Asterisk joins in mode "ipvlan" or "macvlan": parent interface, subnet, gateway, address.',
    )
    sip_allow: tuple[ipaddress.IPv4Network, ...] = Field(
        default=(),
        examples=[["198.51.100.0/24", "203.0.113.64/26"]],
        max_length=256,
        description=(
            "Networks allowed to reach SIP (e.g. your trunk provider's and your offices' CIDRs); empty: everyone. "
            "Enforced by firewall/nftables.conf on the published SIP port (docs/firewall.md)."
        ),
    )

    @field_validator("sip_allow", mode="before")
    @classmethod
    def _sip_allow_is_text(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            for item in value:
                _address_as_text(item)
        return value

    @model_validator(mode="after")
    def _lan_matches_mode(self) -> Network:
        if self.mode == "bridge" and self.lan is not None:
            raise ValueError('network.lan: only used with network.mode = "ipvlan" or "macvlan"; remove [network.lan] or set the mode')
        if self.mode != "bridge" and self.lan is None:
            raise ValueError(
                f'network.lan: mode "{self.mode}" needs [network.lan] with parent, subnet, gateway and address '
                "(the LAN Asterisk joins with its own address)"
            )
        if self.lan is not None and self.lan.subnet.overlaps(self.subnet):
            raise ValueError(
                f"network.lan.subnet: {self.lan.subnet} overlaps the compose subnet network.subnet = {self.subnet}; "
                "move network.subnet to a private range the LAN does not use"
            )
        return self

    _addresses_are_text = field_validator("subnet", "public_ip", "bind_ip", mode="before")(_address_as_text)
    _subnet_is_a_network = field_validator("subnet", mode="before")(_network_address)

    @property
    def advertised(self) -> tuple[str, ipaddress.IPv4Address]:
        """What SIP/SDP advertise, and the key it comes from: the NAT address, else Asterisk's own LAN
        address (LAN modes), else the host's (validation refuses a profile where that is 0.0.0.0)."""
        if self.public_ip is not None:
            return "network.public_ip", self.public_ip
        if self.lan is not None:
            return "network.lan.address", self.lan.address
        return "network.bind_ip", self.bind_ip

    @field_validator("subnet")
    @classmethod
    def _subnet_size(cls, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        # A /28 leaves 7 addresses for Docker to assign, fewer than the smallest stack runs
        # (see _subnet_holds_containers); /27 fits it with one worker of each kind.
        if not 16 <= subnet.prefixlen <= 27:
            raise ValueError("the subnet prefix must be between /16 and /27")
        # RFC 1918 only: ipaddress's is_private also admits loopback, link-local and
        # documentation ranges, which are no place for a container network.
        if not any(subnet.subnet_of(block) for block in PRIVATE_BLOCKS):
            raise ValueError("the compose subnet must be a private range (10/8, 172.16/12, 192.168/16)")
        return subnet

    @field_validator("public_ip")
    @classmethod
    def _public_ip(cls, ip: ipaddress.IPv4Address | None) -> ipaddress.IPv4Address | None:
        if ip is not None and (refusal := public_ip_refusal(ip)):
            raise ValueError(refusal)
        return ip

    @field_validator("bind_ip")
    @classmethod
    def _bind_ip(cls, ip: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        if refusal := bind_ip_refusal(ip):
            raise ValueError(refusal)
        return ip


class Capacity(Frozen):
    concurrent_calls: int = Field(
        examples=[50],
        ge=1, le=10000, description="Bridged calls (caller + agent) the deployment must carry at once."
    )
    headroom_percent: int = Field(
        default=20, ge=0, le=100, description="Extra RTP ports on top of the computed need, in percent."
    )
    supervised_percent: int = Field(
        default=10,
        ge=0,
        le=100,
        description=(
            "Share of calls a supervisor listens to, whispers into or joins (ChanSpy, barge, 3-way conference); "
            "each adds one Asterisk channel. 10% is about one supervisor per ten agents."
        ),
    )
    video: bool = Field(
        default=False,
        description="Video calls: every channel gets a second RTP stream, doubling the media ports.",
    )


class Rtp(Frozen):
    start: int = Field(
        default=10000,
        ge=1024,
        le=65534,
        description="First Asterisk RTP port (even). The end is derived from capacity and is always odd.",
    )

    @field_validator("start")
    @classmethod
    def _even(cls, start: int) -> int:
        if start % 2:
            raise ValueError(
                "rtp.start must be even: Asterisk allocates RTP on even ports and RTCP on the next odd one"
            )
        return start


class Ports(Frozen):
    sip: int = Field(default=5060, ge=1, le=65535, description="SIP port published for UDP and TCP.")
    http: int = Field(default=80, ge=1, le=65535, description="Host port of the web UI over HTTP (redirects to HTTPS).")
    https: int = Field(default=443, ge=1, le=65535, description="Host port of the web UI over HTTPS.")


class Components(Frozen):
    webrtc: bool = Field(
        default=False,
        description=(
            "Add Kamailio (SIP over WebSocket, reached as WSS through nginx) and rtpengine (media relay for "
            "browsers, userspace forwarding) for WebRTC softphones. See docs/webrtc.md."
        ),
    )


# A file path, absolute or relative to the profile: letters, digits and ._@+- between slashes, no spaces.
PEM_PATH_PATTERN = r"^/?[A-Za-z0-9._@+-]+(?:/[A-Za-z0-9._@+-]+)*$"


class Tls(Frozen):
    """The certificate nginx serves on ports.https (docs/tls.md)."""

    mode: Literal["self-signed", "files", "acme"] = Field(
        default="self-signed",
        description=(
            'self-signed: generated once and kept beside the profile in <stem>.tls/ (SANs: project.domain, public_ip, bind_ip). '
            'files: your own chain and key (tls.certificate, tls.key), checked at every build. '
            'acme: a certificate from an ACME CA (Let\'s Encrypt) over HTTP-01, renewed by the acme service, which reloads nginx.'
        ),
    )
    certificate: str | None = Field(
        default=None,
        examples=["certs/fullchain.pem", "/etc/letsencrypt/live/pbx.example.com/fullchain.pem"],
        pattern=PEM_PATH_PATTERN,
        max_length=4096,
        description='mode "files": path of the PEM certificate chain (leaf first), relative to the profile.',
    )
    key: str | None = Field(
        default=None, examples=["certs/privkey.pem"], pattern=PEM_PATH_PATTERN, max_length=4096, description='mode "files": path of the unencrypted PEM private key, relative to the profile.'
    )
    acme_email: str | None = Field(
        default=None,
        examples=["ops@example.com"],
        pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$",
        description='mode "acme": contact address of the ACME account (expiry notices).',
    )
    acme_server: str = Field(
        default="https://acme-v02.api.letsencrypt.org/directory",
        pattern=r"^https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?$",
        description="mode \"acme\": directory URL of the ACME server (Let's Encrypt's staging: https://acme-staging-v02.api.letsencrypt.org/directory).",
    )

    @model_validator(mode="after")
    def _keys_match_mode(self) -> Tls:
        if self.mode == "files" and (self.certificate is None or self.key is None):
            raise ValueError('tls: mode "files" needs tls.certificate and tls.key (paths of PEM files, relative to the profile)')
        if self.mode != "files":
            for key in ("certificate", "key"):
                if getattr(self, key) is not None:
                    raise ValueError(f'tls.{key}: only used with tls.mode = "files" (got mode "{self.mode}"); remove it or set the mode')
        if self.mode == "acme" and self.acme_email is None:
            raise ValueError('tls.acme_email: mode "acme" needs the ACME account\'s contact address')
        if self.mode != "acme" and self.acme_email is not None:
            raise ValueError(f'tls.acme_email: only used with tls.mode = "acme" (got mode "{self.mode}")')
        return self


class Images(Frozen):
    postgres: ImageRef = Field(default="postgres:15.8-alpine", description="PostgreSQL image.")
    redis: ImageRef = Field(default="redis:7.4.1-alpine", description="Redis image.")
    minio: ImageRef = Field(default="minio/minio:RELEASE.2024-11-07T00-52-20Z", description="MinIO image.")
    backend: ImageRef = Field(default="omnivoip/backend:2.0.0", description="Django app and Celery image (built from components/backend unless build.prebuilt).")
    websockets: ImageRef = Field(default="omnivoip/websockets:2.0.0", description="Websockets service image (components/websockets).")
    asterisk: ImageRef = Field(default="omnivoip/asterisk:2.0.0", description="Asterisk PBX image (components/asterisk).")
    dialer_api: ImageRef = Field(default="omnivoip/dialer-api:2.0.0", description="Dialer API image (components/dialer/api).")
    dialer_worker: ImageRef = Field(default="omnivoip/dialer-worker:2.0.0", description="Dialer worker image (components/dialer/worker).")
    frontend: ImageRef = Field(default="omnivoip/frontend:2.0.0", description="Web front-end image (components/frontend).")
    nginx: ImageRef = Field(
        default="nginxinc/nginx-unprivileged:1.27.3-alpine",
        description="nginx image; must run unprivileged (listens on 8080/8443 inside the container).",
    )
    kamailio: ImageRef = Field(
        default="omnivoip/kamailio:2.0.0",
        description="Kamailio image (components.webrtc); generated configs target Kamailio 5.6 with the websocket and auth_ephemeral modules.",
    )
    acme: ImageRef = Field(
        default="goacme/lego:v4.19.2",
        description='ACME client image (tls.mode = "acme"): lego, which the generated renewal script drives.',
    )
    rtpengine: ImageRef = Field(
        default="omnivoip/rtpengine:2.0.0",
        description="rtpengine image (components.webrtc); generated configs target rtpengine 10.5, run in userspace (table = -1).",
    )


class Builds(Frozen):
    source: SourcePath = Field(
        default="../omnivoip",
        description=(
            "Checkout of the OmniVoIP repository the application images are built from, relative to this profile "
            "(or absolute). Each image's build context is derived from it (components/backend, components/dialer/api, ...); "
            "`omnigen build` refuses a missing one. See docs/application.md."
        ),
    )
    prebuilt: bool = Field(
        default=False,
        description="Pull the images.* tags instead of building them from build.source (images published by your own pipeline).",
    )
    backend: BuildPath | None = Field(examples=["src/backend"], default=None, description="Override: build context of the backend image, relative to the output folder.")
    websockets: BuildPath | None = Field(examples=["src/websockets"], default=None, description="Override: build context of the websockets image, relative to the output folder.")
    asterisk: BuildPath | None = Field(examples=["src/asterisk"], default=None, description="Override: build context of the Asterisk image, relative to the output folder.")
    dialer_api: BuildPath | None = Field(examples=["src/dialer-api"], default=None, description="Override: build context of the dialer API image, relative to the output folder.")
    dialer_worker: BuildPath | None = Field(examples=["src/dialer-worker"], default=None, description="Override: build context of the dialer worker image, relative to the output folder.")
    frontend: BuildPath | None = Field(examples=["src/frontend"], default=None, description="Override: build context of the front-end image, relative to the output folder.")
    kamailio: BuildPath | None = Field(examples=["src/kamailio"], default=None, description="Override: build context of the Kamailio image (components.webrtc), relative to the output folder.")
    rtpengine: BuildPath | None = Field(examples=["src/rtpengine"], default=None, description="Override: build context of the rtpengine image (components.webrtc), relative to the output folder.")


class Database(Frozen):
    name: Identifier = Field(default="omnivoip", description="Main PostgreSQL database name.")
    user: Identifier = Field(default="omnivoip", description="Main PostgreSQL user.")


class Storage(Frozen):
    bucket: Annotated[str, AfterValidator(_check_bucket)] = Field(
        default="omnivoip",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="MinIO bucket for recordings (S3 naming rules: 3-63 lowercase letters, digits, dots and hyphens; no `..`, not an IP address).",
    )
    root_user: str = Field(
        default="omnivoip", pattern=r"^[A-Za-z0-9_-]{3,64}$", description="MinIO root user (the app uses it too)."
    )


class Workers(Frozen):
    celery: int = Field(default=2, ge=1, le=64, description="Celery worker replicas.")
    celery_concurrency: int = Field(default=4, ge=1, le=64, description="Processes per Celery worker.")
    dialer: int = Field(default=5, ge=1, le=64, description="Dialer worker replicas.")


# Docker's rule for volume names (moby's RestrictedNamePattern).
VOLUME_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]+$"
VolumeName = Annotated[str, Field(pattern=VOLUME_NAME_PATTERN, max_length=255)]


def _adopted(what: str) -> Any:
    key = what.split(" ", 1)[0]
    return Field(
        default=None,
        examples=[f"prod-env_{key}"],
        description=(
            f"Existing Docker volume to mount as {what}, by its real name (e.g. a migrated site's \"prod-env_<key>\"); "
            "default: the stack's own <project.name>_<key>."
        ),
    )


class Volumes(Frozen):
    """Volumes a migrated site already has (docs/migrating.md): mounted as they are, declared
    `external`, so Compose never creates, copies or removes them (not even `down --volumes`)."""

    asterisk_logs: VolumeName | None = _adopted("asterisk_logs (Asterisk's logs, /var/log/asterisk)")
    asterisk_sounds: VolumeName | None = _adopted("asterisk_sounds (Asterisk's sounds and prompts, /var/lib/asterisk/sounds)")
    asterisk_spool: VolumeName | None = _adopted("asterisk_spool (Asterisk's spool: voicemail, outgoing calls, /var/spool/asterisk)")
    django_logs: VolumeName | None = _adopted("django_logs (Django and Celery logs, /app/logs)")
    django_media: VolumeName | None = _adopted("django_media (files users uploaded, /app/media, served by nginx)")
    django_static: VolumeName | None = _adopted("django_static (Django's collected static files, /app/static)")
    minio_data: VolumeName | None = _adopted("minio_data (MinIO's objects: call recordings)")
    postgres_data: VolumeName | None = _adopted("postgres_data (the main PostgreSQL's data directory)")
    redis_data: VolumeName | None = _adopted("redis_data (Redis's append-only file)")

    @model_validator(mode="after")
    def _one_volume_per_key(self) -> Volumes:
        seen: dict[str, str] = {}
        for key, name in self.model_dump(exclude_none=True).items():
            if name in seen:
                raise ValueError(f"volumes.{key}: {name!r} is already mounted as volumes.{seen[name]}; each volume holds one kind of data")
            seen[name] = key
        return self

    def adopted(self) -> dict[str, str]:
        """Our volume key -> the existing volume's real name, for the keys that adopt one."""
        return {key: name for key, name in self.model_dump(exclude_none=True).items()}


VOLUME_KEYS: tuple[str, ...] = tuple(Volumes.model_fields)


# Host kinds that can join a Swarm and run a per-host bundle. Rootless Docker has no Swarm mode or
# overlay networks; Docker Desktop is a development VM on one machine.
CLUSTER_HOST_KINDS = ("vps", "bare-metal", "lxc-unprivileged", "lxc-privileged")


class ClusterHost(Frozen):
    """One machine of a multi-host deployment (`[[hosts]]`, docs/multi-host.md)."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,14}$",
        examples=["voice1"],
        description="Short host name: lowercase letters, digits and '-' (names the Swarm label omnivoip.host.NAME and the bundle hosts/NAME/).",
    )
    address: ipaddress.IPv4Address = Field(
        examples=["10.10.0.21"],
        description=(
            "The host's address on the private network between the hosts (RFC 1918): its Swarm advertise address, and where "
            "it publishes the data services other hosts use."
        )
    )
    public_ip: ipaddress.IPv4Address | None = Field(
        default=None,
        examples=["203.0.113.21"],
        description="Address phones and browsers reach this host at (NAT or its own public address); default: address.",
    )
    roles: tuple[Literal["data", "web", "voice", "edge"], ...] = Field(
        examples=[["voice"]],
        min_length=1,
        description="What runs here: data (PostgreSQL, Redis, MinIO), web (Django, Celery, dialer), voice (Asterisk), edge (nginx).",
    )
    calls: int | None = Field(
        examples=[120],
        default=None, ge=1, le=10000, description="Voice hosts only: this host's share of capacity.concurrent_calls (sizes its RTP range)."
    )
    sip_port: int | None = Field(examples=[5062], default=None, ge=1, le=65535, description="Voice hosts only: SIP port of this host (default ports.sip).")
    rtp_start: int | None = Field(
        examples=[20000],
        default=None, ge=1024, le=65534, description="Voice hosts only: first RTP port of this host, even (default rtp.start)."
    )
    kind: HostKind | None = Field(examples=["bare-metal"], default=None, description="What this host is (default host.kind): vps, bare-metal, lxc-unprivileged or lxc-privileged.")
    userland_proxy: bool | None = Field(examples=[False], default=None, description="This host's daemon userland-proxy setting (default host.userland_proxy).")

    _addresses_are_text = field_validator("address", "public_ip", mode="before")(_address_as_text)

    @field_validator("address")
    @classmethod
    def _private_address(cls, address: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        if not any(address in block for block in PRIVATE_BLOCKS):
            raise ValueError(
                "must be a private address (10/8, 172.16/12, 192.168/16): the hosts reach each other's data services there, "
                "unencrypted; put public addresses in public_ip"
            )
        return address

    @field_validator("public_ip")
    @classmethod
    def _reachable(cls, ip: ipaddress.IPv4Address | None) -> ipaddress.IPv4Address | None:
        if ip is not None and (refusal := public_ip_refusal(ip)):
            raise ValueError(refusal)
        return ip

    @model_validator(mode="after")
    def _voice_settings(self) -> ClusterHost:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles: a role is listed twice (got {list(self.roles)}); list each role once")
        voice = "voice" in self.roles
        if voice and self.calls is None:
            raise ValueError("calls: a voice host needs its share of capacity.concurrent_calls (calls = N)")
        for key in ("calls", "sip_port", "rtp_start"):
            if not voice and getattr(self, key) is not None:
                raise ValueError(f"{key}: only voice hosts carry calls; remove {key} or add 'voice' to roles")
        if self.rtp_start is not None and self.rtp_start % 2:
            raise ValueError("rtp_start: must be even: Asterisk allocates RTP on even ports and RTCP on the next odd one")
        if self.kind is not None and self.kind not in CLUSTER_HOST_KINDS:
            raise ValueError(
                f"kind: {self.kind} cannot be a host of a multi-host deployment (rootless Docker has no Swarm mode or overlay "
                f"networks, Docker Desktop is one development VM); use one of {', '.join(CLUSTER_HOST_KINDS)}"
            )
        return self

    def host_kind(self, default: str) -> str:
        return self.kind or default

    def proxy(self, default: bool) -> bool:
        return default if self.userland_proxy is None else self.userland_proxy


class Profile(BaseSettings):
    """An OmniVoIP deployment profile (omnivoip.toml)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        validate_default=True,
        title="omnigen profile",
    )

    schema_version: Literal[2] = Field(description="Profile format version; `omnigen migrate` upgrades older ones.")
    project: Project = Field(description="Naming.")
    host: Host = Field(default_factory=lambda: Host(), description="The machine Docker runs on.")
    network: Network = Field(default_factory=lambda: Network(), description="Addresses and publishing.")
    capacity: Capacity = Field(description="How many calls the deployment carries.")
    rtp: Rtp = Field(default_factory=lambda: Rtp(), description="Asterisk RTP range.")
    ports: Ports = Field(default_factory=lambda: Ports(), description="Published host ports of SIP and the web UI.")
    components: Components = Field(default_factory=lambda: Components(), description="Optional parts of the stack.")
    tls: Tls = Field(default_factory=lambda: Tls(), description="The web UI's certificate (docs/tls.md).")
    images: Images = Field(default_factory=lambda: Images(), description="Container images, each with a pinned tag.")
    build: Builds = Field(default_factory=lambda: Builds(), description="Where the OmniVoIP images are built from (docs/application.md).")
    database: Database = Field(default_factory=lambda: Database(), description="PostgreSQL names and users.")
    storage: Storage = Field(default_factory=lambda: Storage(), description="MinIO object storage.")
    workers: Workers = Field(default_factory=lambda: Workers(), description="Worker replica counts.")
    volumes: Volumes = Field(
        default_factory=lambda: Volumes(),
        description=(
            "Existing Docker volumes to mount instead of new ones, by their real names: how `omnigen import` keeps a "
            "running site's data (docs/migrating.md). Declared external: never created, copied or removed."
        ),
    )
    hosts: tuple[ClusterHost, ...] = Field(
        default=(),
        description=(
            "Several machines ([[hosts]]): builds stack.yml for Docker Swarm and one compose bundle per host "
            "(docs/multi-host.md). Without it everything runs on one host."
        ),
    )

    _sources_note: ClassVar[str] = "environment variables override the TOML file"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML document arrives as init kwargs; OMNIGEN_* variables win over it.
        # No dotenv or secrets-dir source: a stray .env in the working folder must
        # never change a build.
        return (_GivenEnvSource(settings_cls), init_settings)

    @model_validator(mode="after")
    def _advertised_address(self) -> Profile:
        # In a LAN mode Asterisk advertises its own LAN address unless public_ip says otherwise.
        # With [[hosts]] every voice host advertises its own public_ip or address.
        if not self.hosts and self.network.public_ip is None and self.network.bind_ip.is_unspecified and self.network.lan is None:
            raise ValueError(
                "network: no address to advertise in SIP/SDP: in bridge mode phones cannot reach the container "
                "address; set network.public_ip (behind NAT) or network.bind_ip (the host's own address)"
            )
        return self

    @model_validator(mode="after")
    def _webrtc_edge_reachable(self) -> Profile:
        # The WebRTC edge advertises the address Asterisk advertises (one fact: network.advertised),
        # because browsers reach nginx and rtpengine where phones reach Asterisk. In a LAN mode
        # without public_ip that address is Asterisk's own LAN address: an ipvlan/macvlan address
        # belongs to Asterisk's container alone, while nginx and rtpengine are published on the
        # host's address, so browsers sent there would reach neither.
        if self.components.webrtc and not self.hosts and self.network.lan is not None and self.network.public_ip is None:
            raise ValueError(
                f'components.webrtc: in network.mode = "{self.network.mode}" without network.public_ip, Asterisk advertises '
                f"its own LAN address {self.network.lan.address}, which only its container answers; browsers would be sent "
                "there and reach neither nginx (WSS) nor rtpengine (media), which are published on the host; set "
                "network.public_ip to the address that forwards SIP/RTP to network.lan.address and HTTPS plus the WebRTC "
                'media range to the host, or use network.mode = "bridge"'
            )
        return self

    @model_validator(mode="after")
    def _acme_has_a_name(self) -> Profile:
        if self.tls.mode == "acme" and self.project.domain is None:
            raise ValueError('tls.mode: "acme" validates a DNS name over HTTP-01; set project.domain to the name pointing at this host')
        if self.tls.mode == "acme" and self.hosts:
            raise ValueError('tls.mode: "acme" is for single-host profiles; with [[hosts]] use "files" on the edge host or "self-signed"')
        return self

    @model_validator(mode="after")
    def _subnet_holds_containers(self) -> Profile:
        needed = dynamic_addresses_needed(self.workers.celery, self.workers.dialer)
        available = dynamic_addresses_available(self.network.subnet)
        if needed > available:
            raise ValueError(
                f"network.subnet: {self.network.subnet} leaves {available} addresses for Docker to assign "
                f"(its upper half; the lower half holds fixed service addresses), but the stack runs {needed} "
                "containers with assigned addresses; use a larger subnet (a /24 holds 127) or fewer worker replicas"
            )
        return self

    @model_validator(mode="after")
    def _network_mode_fits_host(self) -> Profile:
        if refusal := hostkinds.lan_mode_refusal(self.host.kind, self.network.mode):
            raise ValueError(refusal)
        return self

    @model_validator(mode="after")
    def _hosts_use_no_single_host_settings(self) -> Profile:
        # Whether the ports, the host's size and the placement of [[hosts]] work is a question for
        # the plan layer (feasibility.py), asked once this model is valid.
        if self.hosts and (refusal := _cluster_refusal(self)):
            raise ValueError(refusal)
        return self


def _cluster_refusal(profile: Profile) -> str | None:
    """A single-host setting that a multi-host profile cannot honour, as a keyed message."""
    network = profile.network
    reasons = {
        "network.mode": (network.mode != "bridge", "ipvlan/macvlan give one host's Asterisk a LAN address; multi-host profiles run bridge networks on every host and an overlay network in Swarm; remove it"),
        "network.public_ip": (network.public_ip is not None, "each host has its own: set hosts[].public_ip instead"),
        "network.bind_ip": (not network.bind_ip.is_unspecified, "each host publishes its public ports on all its addresses and its data services on hosts[].address; remove it"),
        "network.expose_internal": (network.expose_internal, "the data host already publishes what other hosts need on its private address; remove it"),
        "volumes": (bool(profile.volumes.adopted()), "a Swarm volume lives on the node a task runs on; migrate the site to one host first, then split it"),
        "components.webrtc": (profile.components.webrtc, "Kamailio and rtpengine need fixed container addresses, which Swarm services cannot have; multi-host profiles do not support the WebRTC edge yet (docs/multi-host.md)"),
    }
    for key, (applies, why) in reasons.items():
        if applies:
            return f"{key}: not used with [[hosts]]: {why}"
    if profile.host.kind not in CLUSTER_HOST_KINDS and any(host.kind is None for host in profile.hosts):
        return (
            f"host.kind: {profile.host.kind} cannot be a host of a multi-host deployment (no Swarm mode or overlay networks "
            f"on rootless Docker; Docker Desktop is one development VM); use one of {', '.join(CLUSTER_HOST_KINDS)}"
        )
    return None


class Secrets(Frozen):
    """Credentials, kept in the `<profile-stem>.secrets.toml` sidecar, never in the profile."""

    postgres_password: str | None = Field(default=None, description="PostgreSQL password.")
    redis_password: str | None = Field(default=None, description="Redis password.")
    minio_root_password: str | None = Field(default=None, description="MinIO root password (also the app's S3 secret).")
    django_secret_key: str | None = Field(default=None, description="Django SECRET_KEY.")
    django_admin_password: str | None = Field(
        default=None, description="Password of the Django superuser the startup command creates (DJANGO_SUPERUSER_EMAIL)."
    )
    ami_password: str | None = Field(default=None, description="Secret of the backend's AMI user (manager.conf, ASTERISK_AMI_SECRET).")
    dialer_ami_password: str | None = Field(default=None, description="Secret of the dialer's AMI user (manager.conf, the dialer API's ASTERISK_AMI_SECRET).")
    ari_password: str | None = Field(default=None, description="Password of the backend's ARI user (ari.conf, ASTERISK_ARI_PASSWORD).")
    webrtc_auth_secret: str | None = Field(
        default=None,
        description="Shared secret of Kamailio's auth_ephemeral and the app that issues WebRTC SIP credentials (components.webrtc).",
    )

    @field_validator("*")
    @classmethod
    def _usable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value:
            raise ValueError("a secret cannot be empty; delete the key to have one generated")
        if "\x00" in value:
            raise ValueError("a secret cannot contain a NUL character")
        if len(value) > 1024:
            raise ValueError("a secret longer than 1024 characters is not supported")
        if PLACEHOLDER_PATTERN.search(value):
            raise ValueError("this looks like a placeholder, not a secret; delete the key to have one generated")
        return value

    @field_validator("ami_password", "dialer_ami_password", "ari_password")
    @classmethod
    def _asterisk_can_read(cls, value: str | None) -> str | None:
        # Written into manager.conf/ari.conf: Asterisk ends a value at a line break, trims the
        # spaces around it and reads a leading `>` as object syntax (`;` is escaped as `\;`).
        if value is not None and (ASTERISK_UNREADABLE.search(value) or value != value.strip()):
            raise ValueError(
                "Asterisk cannot read this secret back from manager.conf/ari.conf: no control characters, no spaces at "
                "either end, no leading '>'; delete the key to have one generated"
            )
        return value

    @field_validator("webrtc_auth_secret")
    @classmethod
    def _kamailio_can_read(cls, value: str | None) -> str | None:
        if value is not None and KAMAILIO_UNREADABLE.search(value):
            raise ValueError(
                "Kamailio cannot read this secret from its environment (#!defenvs quotes it as it is): no double quote, "
                "no backslash, no control characters; delete the key to have one generated"
            )
        return value


SECRET_NAMES: tuple[str, ...] = tuple(Secrets.model_fields)
# Secrets of services the application does not have (dialer-postgresql, the dialer's own login; docs/application.md).
# A sidecar written by an older omnigen still holds them: they are ignored, and the file is left as it is.
RETIRED_SECRETS = frozenset({"dialer_postgres_password", "dialer_password"})


secrets_path_for = sidecar_path


def profile_arguments(paths: Sequence[Path]) -> list[Path]:
    """The profiles among command-line paths: `profiles/*.toml` also matches the sidecars builds write.

    A sidecar whose profile is listed too is skipped; a sidecar on its own is a mistake worth naming.
    """
    listed = {path.resolve() for path in paths}
    profiles = []
    for path in paths:
        if not path.name.endswith(SECRETS_SUFFIX):
            profiles.append(path)
            continue
        owner = path.with_name(path.name.removesuffix(SECRETS_SUFFIX) + ".toml")
        if owner.resolve() not in listed:
            raise UsageError(f"{path}: this is the secrets sidecar of {owner}, not a profile; pass {owner} instead")
    return profiles


UTF8_BOM = "\ufeff"


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML file, turning every failure into a located ProfileError."""
    what = "secrets sidecar" if path.name.endswith(SECRETS_SUFFIX) else "profile"
    try:
        raw = read_input(path, limit=MAX_TOML_BYTES, what=what)
    except InputFileError as exc:
        raise ProfileError([InputIssue(str(path), "", exc.message, hint=exc.hint)]) from None
    except OSError as exc:
        raise ProfileError([InputIssue(str(path), "", f"cannot read the file ({exc.strerror})")]) from None
    if raw is None:
        raise ProfileError([InputIssue(str(path), "", "file not found", hint="check the path")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(
            [InputIssue(str(path), "", f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8")]
        ) from None
    if text.startswith(UTF8_BOM):
        # TOML has no byte order mark; tomllib would call it an "Invalid statement".
        raise ProfileError(
            [InputIssue(str(path), "", "starts with a UTF-8 byte order mark (BOM), which TOML does not allow", line=1, hint="save the file as UTF-8 without BOM")]
        )
    return parse_toml(text, str(path)), text


def _env_name(loc: tuple[str, ...]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(part.upper() for part in loc)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_class(annotation: Any) -> Any:
    """The model inside an optional table (`Lan | None` -> Lan), so key walks reach its fields."""
    for candidate in typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ():
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return annotation


# A validator message that names its key first ("network.lan.address: ..."), so the
# error can point at that key's line instead of the table that holds it.
# Array items are numbered ("hosts.1.calls"); a validator of an array item names its key
# relative to the item ("calls: ..."), since it does not know its index.
_KEYED_MESSAGE = re.compile(r"^([a-z_]+(?:\.(?:[a-z_]+|[0-9]+))*): (.+)$", re.S)


def _allowed_keys(model: type[BaseModel], loc: tuple[str, ...]) -> list[str] | None:
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return None
        current = _model_class(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def _issues_from(
    exc: ValidationError,
    *,
    file: str,
    text: str,
    model: type[BaseModel],
    env: dict[str, str],
) -> list[InputIssue]:
    lines = key_lines(text)
    env_upper = {key.upper() for key in env}
    issues: list[InputIssue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"] if not str(part).startswith("function-"))
        key = ".".join(loc)
        kind = error["type"]
        message = error["msg"].removeprefix("Value error, ")
        got: str | None = _short(error.get("input")) if kind not in {"missing", "model_type"} else None
        hint: str | None = None
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            message = "unknown key"
            got = None
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it or check its spelling"
        elif kind == "missing":
            message = "required key is missing"
            hint = "add it to the profile (every key: docs/profile.md, `omnigen schema --format markdown`)"
        elif kind == "literal_error" and loc == ("schema_version",):
            hint = "run `omnigen migrate` on older profiles; a newer one needs a newer omnigen"
        elif kind == "value_error" and (keyed := _KEYED_MESSAGE.match(message)):
            named = tuple(keyed.group(1).split("."))
            if named[: len(loc)] == loc:
                loc, key, message = named, keyed.group(1), keyed.group(2)
            elif loc and loc[-1].isdigit():
                loc = (*loc, *named)
                key, message = ".".join(loc), keyed.group(2)
            if isinstance(error.get("input"), dict):
                got = None  # a whole table: the message says what was wrong with it
        source, line = _position(loc, file, lines, env_upper)
        issues.append(InputIssue(source, key, message, line=line, got=got, hint=hint))
    return issues


def _position(loc: tuple[str, ...], file: str, lines: Mapping[tuple[str, ...], int], env_upper: set[str]) -> tuple[str, int | None]:
    """Where the value at `loc` comes from: the OMNIGEN_* variable that set it (or a table above it),
    else the file and the line of the nearest key written there."""
    env_hits = [name for name in (_env_name(loc[:n]) for n in range(len(loc), 0, -1)) if name in env_upper]
    if env_hits:
        return f"environment {env_hits[0]}", None
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return file, lines[loc[:n]]
    return file, None


def issue_at(problem: KeyedProblem, *, file: str, text: str, env: Mapping[str, str]) -> InputIssue:
    """A problem the plan layer found in a valid profile (feasibility.py), placed like a validation error."""
    source, line = _position(problem.path, file, key_lines(text), {key.upper() for key in env})
    return InputIssue(source, problem.key, problem.message, line=line)


def check_schema_version(data: dict[str, Any], file: str, text: str) -> None:
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        line = key_lines(text).get(("schema_version",))
        raise ProfileError(
            [
                InputIssue(
                    file,
                    "schema_version",
                    f"this profile is for a newer omnigen (this one reads schema_version {SCHEMA_VERSION})",
                    line=line,
                    got=str(version),
                    hint="upgrade omnigen",
                )
            ]
        )
    # Older formats are refused up front with one clear message instead of the
    # unknown/missing key errors their renamed keys would cause. Pre-release
    # (schema 0) profiles had no schema_version key at all (docs/releases.md).
    if "schema_version" not in data or (isinstance(version, int) and not isinstance(version, bool) and 0 <= version < SCHEMA_VERSION):
        found = "missing, so this is a pre-release (schema 0) profile" if version is None else f"{version} is an older format"
        raise ProfileError(
            [
                InputIssue(
                    file,
                    "schema_version",
                    f"{found}; this omnigen reads schema_version {SCHEMA_VERSION}",
                    line=key_lines(text).get(("schema_version",)),
                    hint=f"run `omnigen migrate {file}` to upgrade it in place (comments and layout are kept)",
                )
            ]
        )


@dataclass(frozen=True)
class ProfileSource:
    """A profile file as read: its TOML data and text, and the OMNIGEN_* overrides that apply."""

    file: str
    data: dict[str, Any]
    text: str
    env: dict[str, str]


def read_profile_source(path: Path, environ: dict[str, str] | None = None) -> ProfileSource:
    """Read a profile file and the environment's overrides (the model is validated by validate_model)."""
    data, text = read_toml(path)
    check_schema_version(data, str(path), text)
    return ProfileSource(str(path), data, text, env_overrides(dict(os.environ if environ is None else environ)))


def _unknown_overrides(env: dict[str, str]) -> list[InputIssue]:
    """pydantic-settings silently skips OMNIGEN_* names that match no field; we refuse them."""
    issues = []
    for name in sorted(env):
        loc = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_DELIMITER))
        current: Any = Profile
        for part in loc:
            fields = current.model_fields if isinstance(current, type) and issubclass(current, BaseModel) else {}
            if part not in fields:
                allowed = sorted(fields) if fields else None
                issues.append(
                    InputIssue(
                        f"environment {name}",
                        ".".join(loc),
                        "unknown override: no profile key has this name",
                        hint=f"allowed keys here: {', '.join(allowed)}" if allowed else "unset the variable",
                    )
                )
                break
            current = _model_class(fields[part].annotation)
    return issues


def validate_model(data: dict[str, Any], *, file: str, text: str, env: dict[str, str]) -> Profile:
    """The profile model of `data`: every table valid on its own terms. Whether it can be deployed
    (ports, budgets, the host's size, [[hosts]] placement) is loading.py's question."""
    if unknown := _unknown_overrides(env):
        raise ProfileError(unknown)
    try:
        return _build_with_env(data, env)
    except ValidationError as exc:
        raise ProfileError(_issues_from(exc, file=file, text=text, model=Profile, env=env)) from None


_given_env: ContextVar[dict[str, str] | None] = ContextVar("omnigen_profile_env", default=None)


class _GivenEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, fed the mapping the caller passed
    instead of os.environ, so loading stays a pure function of its arguments."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(_given_env.get() or {}, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def __call__(self) -> dict[str, Any]:
        return _typed_env_values(super().__call__(), self.settings_cls)


def _typed_env_values(data: dict[str, Any], model: Any) -> dict[str, Any]:
    """Environment values are text: `OMNIGEN_CAPACITY__CONCURRENT_CALLS=60` means the number 60 and
    `..._VIDEO=true` the switch, while the same text quoted in the TOML file is refused (Frozen)."""
    fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    typed: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            typed[key] = value
        elif isinstance(value, dict):
            typed[key] = _typed_env_values(value, _model_class(field.annotation))
        elif isinstance(value, str) and (kind := _scalar_kind(field.annotation)) is not None:
            try:
                typed[key] = TypeAdapter(kind).validate_python(value.strip())
            except ValidationError:
                typed[key] = value  # the model's own message names the variable
        else:
            typed[key] = value
    return typed


def _build_with_env(data: dict[str, Any], env: dict[str, str]) -> Profile:
    token = _given_env.set(env)
    try:
        return Profile(**data)
    finally:
        _given_env.reset(token)


def load_secrets(path: Path) -> Secrets:
    """Read the secrets sidecar; a missing sidecar means every secret is generated."""
    if not path.exists():
        return Secrets()
    data, text = read_toml(path)
    data = {key: value for key, value in data.items() if key not in RETIRED_SECRETS}
    try:
        return Secrets(**data)
    except ValidationError as exc:
        issues = _issues_from(exc, file=str(path), text=text, model=Secrets, env={})
        for issue in issues:
            issue.got = None  # never echo a secret back to a terminal or a CI log
        raise ProfileError(issues) from None
