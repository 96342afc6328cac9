"""Stage 1: load and validate a profile (TOML file + OMNIGEN_* environment overrides).

The models here are the contract with users: every field is frozen, unknown
keys are refused, and every field carries a description that feeds
`omnigen schema` and the docs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from omnigen.capacity import MAX_PORT, asterisk_range
from omnigen.errors import InputIssue, ProfileError
from omnigen.tomlpos import key_lines

SCHEMA_VERSION = 1
ENV_PREFIX = "OMNIGEN_"
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
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
HOSTNAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
TIMEZONE_PATTERN = r"^(?:UTC|[A-Z][A-Za-z_]+(?:/[A-Za-z0-9_+-]+){1,2})$"

PLACEHOLDER_PATTERN = re.compile(r"change[_-]?me|change[_-]?this|your[_-]|replace[_-]?me|^x{3,}$|^password$", re.I)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _refuse_host_network(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "host":
        raise ValueError(
            'network mode "host" is refused: it shares the host network namespace, which unprivileged '
            "LXC, rootless Docker and Docker Desktop cannot do and which removes isolation everywhere; "
            'use mode = "bridge" (RTP is published with host port == container port, so media works)'
        )
    return value


def _check_image(value: str) -> str:
    if value.rsplit(":", 1)[-1].split("@", 1)[0] == "latest":
        raise ValueError("the tag 'latest' is not a pinned version; name an explicit release tag (e.g. redis:7.4.1-alpine)")
    return value


ImageRef = Annotated[str, Field(pattern=IMAGE_PATTERN, max_length=255), AfterValidator(_check_image)]
BuildPath = Annotated[str, Field(pattern=BUILD_PATH_PATTERN, max_length=255)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]


class Project(Frozen):
    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,39}$",
        description="Compose project name and container prefix: lowercase letters, digits and '-', starting with a letter.",
    )
    domain: str | None = Field(
        default=None,
        pattern=HOSTNAME_PATTERN,
        max_length=253,
        description="Public DNS name of the web UI (nginx server_name, Django ALLOWED_HOSTS). Optional.",
    )
    timezone: str = Field(default="UTC", pattern=TIMEZONE_PATTERN, description="IANA time zone of every service (TZ).")


class Host(Frozen):
    kind: HostKind = Field(
        default="vps",
        description="Where Docker runs: vps, bare-metal, lxc-unprivileged, lxc-privileged, docker-desktop or rootless.",
    )


class Network(Frozen):
    mode: Annotated[Literal["bridge"], BeforeValidator(_refuse_host_network)] = Field(
        default="bridge",
        description='Container networking. Only "bridge" is supported; "host" is refused (see the docs).',
    )
    subnet: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.22.22.0/24"),
        description="IPv4 subnet of the compose network (prefix /16 to /28).",
    )
    public_ip: ipaddress.IPv4Address | None = Field(
        default=None,
        description="Address advertised in SIP/SDP when the host is behind NAT. Optional.",
    )
    bind_ip: ipaddress.IPv4Address = Field(
        default=ipaddress.IPv4Address("0.0.0.0"),
        description="Host IPv4 address that public ports (SIP, RTP, HTTP/S) are published on.",
    )
    expose_internal: bool = Field(
        default=False,
        description="Publish PostgreSQL, Redis, MinIO and Gearman on 127.0.0.1 for debugging. Never on other addresses.",
    )

    @field_validator("subnet")
    @classmethod
    def _subnet_size(cls, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= subnet.prefixlen <= 28:
            raise ValueError("the subnet prefix must be between /16 and /28")
        if not subnet.is_private:
            raise ValueError("the compose subnet must be a private range (10/8, 172.16/12, 192.168/16)")
        return subnet

    @field_validator("public_ip")
    @classmethod
    def _public_ip(cls, ip: ipaddress.IPv4Address | None) -> ipaddress.IPv4Address | None:
        if ip is not None and (ip.is_unspecified or ip.is_loopback or ip.is_multicast):
            raise ValueError("public_ip must be a routable unicast address clients can reach")
        return ip

    @field_validator("bind_ip")
    @classmethod
    def _bind_ip(cls, ip: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
        if ip.is_multicast:
            raise ValueError("bind_ip cannot be a multicast address")
        return ip


class Capacity(Frozen):
    concurrent_calls: int = Field(
        ge=1, le=10000, description="Bridged calls (caller + agent) the deployment must carry at once."
    )
    headroom_percent: int = Field(
        default=20, ge=0, le=100, description="Extra RTP ports on top of the computed need, in percent."
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


class Images(Frozen):
    postgres: ImageRef = Field(default="postgres:15.8-alpine", description="PostgreSQL image (main and dialer DB).")
    redis: ImageRef = Field(default="redis:7.4.1-alpine", description="Redis image.")
    minio: ImageRef = Field(default="minio/minio:RELEASE.2024-11-07T00-52-20Z", description="MinIO image.")
    gearman: ImageRef = Field(default="artefactual/gearmand:1.1.21.2-alpine", description="Gearman job server image.")
    backend: ImageRef = Field(default="omnivoip/backend:2.0.0", description="Django app and Celery image.")
    websockets: ImageRef = Field(default="omnivoip/websockets:2.0.0", description="Websockets service image.")
    asterisk: ImageRef = Field(default="omnivoip/asterisk:2.0.0", description="Asterisk PBX image.")
    dialer_api: ImageRef = Field(default="omnivoip/dialer-api:2.0.0", description="Dialer API image.")
    dialer_worker: ImageRef = Field(default="omnivoip/dialer-worker:2.0.0", description="Dialer worker image.")
    frontend: ImageRef = Field(default="omnivoip/frontend:2.0.0", description="Web front-end image.")
    nginx: ImageRef = Field(
        default="nginxinc/nginx-unprivileged:1.27.3-alpine",
        description="nginx image; must run unprivileged (listens on 8080/8443 inside the container).",
    )


class Builds(Frozen):
    backend: BuildPath | None = Field(default=None, description="Build context of the backend image, relative to the output folder.")
    websockets: BuildPath | None = Field(default=None, description="Build context of the websockets image.")
    asterisk: BuildPath | None = Field(default=None, description="Build context of the Asterisk image.")
    dialer_api: BuildPath | None = Field(default=None, description="Build context of the dialer API image.")
    dialer_worker: BuildPath | None = Field(default=None, description="Build context of the dialer worker image.")
    frontend: BuildPath | None = Field(default=None, description="Build context of the front-end image.")


class Database(Frozen):
    name: Identifier = Field(default="omnivoip", description="Main PostgreSQL database name.")
    user: Identifier = Field(default="omnivoip", description="Main PostgreSQL user.")
    dialer_name: Identifier = Field(default="omnidialer", description="Dialer PostgreSQL database name.")
    dialer_user: Identifier = Field(default="omnidialer", description="Dialer PostgreSQL user.")


class Storage(Frozen):
    bucket: str = Field(
        default="omnivoip", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="MinIO bucket for recordings."
    )
    root_user: str = Field(
        default="omnivoip", pattern=r"^[A-Za-z0-9_-]{3,64}$", description="MinIO root user (the app uses it too)."
    )


class Workers(Frozen):
    celery: int = Field(default=2, ge=1, le=64, description="Celery worker replicas.")
    celery_concurrency: int = Field(default=4, ge=1, le=64, description="Processes per Celery worker.")
    dialer: int = Field(default=5, ge=1, le=64, description="Dialer worker replicas.")


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

    schema_version: Literal[1] = Field(description="Profile format version; `omnigen migrate` upgrades older ones.")
    project: Project = Field(description="Naming.")
    host: Host = Field(default_factory=lambda: Host(), description="The machine Docker runs on.")
    network: Network = Field(default_factory=lambda: Network(), description="Addresses and publishing.")
    capacity: Capacity = Field(description="How many calls the deployment carries.")
    rtp: Rtp = Field(default_factory=lambda: Rtp(), description="Asterisk RTP range.")
    ports: Ports = Field(default_factory=lambda: Ports(), description="Published host ports of SIP and the web UI.")
    images: Images = Field(default_factory=lambda: Images(), description="Container images, each with a pinned tag.")
    build: Builds = Field(default_factory=lambda: Builds(), description="Optional build contexts for the OmniVoIP images.")
    database: Database = Field(default_factory=lambda: Database(), description="PostgreSQL names and users.")
    storage: Storage = Field(default_factory=lambda: Storage(), description="MinIO object storage.")
    workers: Workers = Field(default_factory=lambda: Workers(), description="Worker replica counts.")

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
        if self.network.public_ip is None and self.network.bind_ip.is_unspecified:
            raise ValueError(
                "network: no address to advertise in SIP/SDP: in bridge mode phones cannot reach the container "
                "address; set network.public_ip (behind NAT) or network.bind_ip (the host's own address)"
            )
        return self

    @model_validator(mode="after")
    def _rtp_fits(self) -> Profile:
        rtp = asterisk_range(self.rtp.start, self.capacity.concurrent_calls, self.capacity.headroom_percent)
        if rtp.end > MAX_PORT:
            raise ValueError(
                f"rtp: {self.capacity.concurrent_calls} calls need {rtp.size} RTP ports "
                f"({rtp.ports_needed} + {rtp.headroom_percent}% headroom), so a range starting at {rtp.start} "
                f"ends at {rtp.end}, past {MAX_PORT}; lower rtp.start to at most {MAX_PORT + 1 - rtp.size - (MAX_PORT + 1 - rtp.size) % 2}"
            )
        for key, port in (("ports.sip", self.ports.sip), ("ports.http", self.ports.http), ("ports.https", self.ports.https)):
            if rtp.start <= port <= rtp.end:
                raise ValueError(
                    f"rtp: the RTP range {rtp.start}-{rtp.end} contains {key} = {port}; move rtp.start or the port"
                )
        return self

    @model_validator(mode="after")
    def _ports_distinct(self) -> Profile:
        published = {"ports.sip": self.ports.sip, "ports.http": self.ports.http, "ports.https": self.ports.https}
        seen: dict[int, str] = {}
        for key, port in published.items():
            if port in seen:
                raise ValueError(f"{key} and {seen[port]} both use host port {port}; give each its own port")
            seen[port] = key
        return self


class Secrets(Frozen):
    """Credentials, kept in the `<profile-stem>.secrets.toml` sidecar, never in the profile."""

    postgres_password: str | None = Field(default=None, description="Main PostgreSQL password.")
    dialer_postgres_password: str | None = Field(default=None, description="Dialer PostgreSQL password.")
    redis_password: str | None = Field(default=None, description="Redis password.")
    minio_root_password: str | None = Field(default=None, description="MinIO root password (also the app's S3 secret).")
    django_secret_key: str | None = Field(default=None, description="Django SECRET_KEY.")
    ami_password: str | None = Field(default=None, description="Asterisk Manager Interface password.")
    dialer_password: str | None = Field(default=None, description="Dialer API password.")

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


SECRET_NAMES: tuple[str, ...] = tuple(Secrets.model_fields)


def secrets_path_for(profile_path: Path) -> Path:
    """The sidecar beside the profile: `acme.toml` -> `acme.secrets.toml`."""
    return profile_path.with_name(f"{profile_path.stem}.secrets.toml")


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML file, turning every failure into a located ProfileError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError([InputIssue(str(path), "", "file not found", hint="check the path")]) from None
    except OSError as exc:
        raise ProfileError([InputIssue(str(path), "", f"cannot read the file ({exc.strerror})")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(
            [InputIssue(str(path), "", f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8")]
        ) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = str(exc).split(" (at ", 1)[0]
        raise ProfileError(
            [InputIssue(str(path), "", f"malformed TOML: {message}", line=line, hint="fix the TOML syntax")]
        ) from None


def _env_overrides(environ: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key.upper().startswith(ENV_PREFIX)}


def _env_name(loc: tuple[str, ...]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(part.upper() for part in loc)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(model: type[BaseModel], loc: tuple[str, ...]) -> list[str] | None:
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return None
        current = field.annotation
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
            hint = "add it to the profile (see `omnigen schema`)"
        elif kind == "literal_error" and loc == ("schema_version",):
            hint = "run `omnigen migrate` on older profiles; a newer one needs a newer omnigen"
        source = file
        line = None
        env_hits = [name for name in (_env_name(loc[:n]) for n in range(len(loc), 0, -1)) if name in env_upper]
        if env_hits:
            source = f"environment {env_hits[0]}"
        else:
            for n in range(len(loc), 0, -1):
                if loc[:n] in lines:
                    line = lines[loc[:n]]
                    break
        issues.append(InputIssue(source, key, message, line=line, got=got, hint=hint))
    return issues


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


def load_profile(path: Path, environ: dict[str, str] | None = None) -> Profile:
    """Read, override from the environment and validate a profile file."""
    data, text = read_toml(path)
    check_schema_version(data, str(path), text)
    env = _env_overrides(dict(os.environ if environ is None else environ))
    return validate_profile(data, file=str(path), text=text, env=env)


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
            current = fields[part].annotation
    return issues


def validate_profile(data: dict[str, Any], *, file: str, text: str, env: dict[str, str]) -> Profile:
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
    try:
        return Secrets(**data)
    except ValidationError as exc:
        issues = _issues_from(exc, file=str(path), text=text, model=Secrets, env={})
        for issue in issues:
            issue.got = None  # never echo a secret back to a terminal or a CI log
        raise ProfileError(issues) from None
