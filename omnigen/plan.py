"""Stage 2: derive every number, address and string the outputs print.

`make_plan` is a pure function of the validated profile and the resolved
secrets. Templates print plan values and nothing else, so a value that must
agree across files (the RTP range, a port, a URL) is computed exactly once here.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import quote

from omnigen import __version__
from omnigen.capacity import MAX_PORT, RtpRange, asterisk_range
from omnigen.profile import Profile, Secrets

NETWORK_NAME = "omnivoip_net"
AMI_USER = "omnivoipami"

# Ports services listen on inside the compose network. Clients are told these,
# never a host-side port.
LISTEN = {
    "postgresql": 5432,
    "dialer-postgresql": 5432,
    "redis": 6379,
    "minio": 9000,
    "minio-console": 9001,
    "gearman": 4730,
    "django-app": 8000,
    "websockets": 8000,
    "dialer-api": 1440,
    "frontend": 8080,
    "nginx-http": 8080,
    "nginx-https": 8443,
    "asterisk-ami": 5038,
    "asterisk-http": 8088,
}

INTERNAL_SERVICES = ("postgresql", "dialer-postgresql", "redis", "minio", "gearman")


@dataclass(frozen=True)
class PublishedPort:
    """One `ports:` entry. Ranges have start < end; single ports start == end."""

    service: str
    host_ip: str
    host_start: int
    host_end: int
    container_start: int
    container_end: int
    protocol: str
    purpose: str

    @property
    def compose(self) -> str:
        def span(start: int, end: int) -> str:
            return str(start) if start == end else f"{start}-{end}"

        return (
            f"{self.host_ip}:{span(self.host_start, self.host_end)}:"
            f"{span(self.container_start, self.container_end)}/{self.protocol}"
        )

    @property
    def count(self) -> int:
        return self.host_end - self.host_start + 1


@dataclass(frozen=True)
class Limits:
    memory: str
    cpus: str
    pids: int


@dataclass(frozen=True)
class ServiceImage:
    image: str
    build: str | None


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str
    secret: bool = False


@dataclass(frozen=True)
class EnvSection:
    title: str
    variables: tuple[EnvVar, ...]


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    subnet: str
    asterisk_ip: str
    local_nets: tuple[str, ...]
    public_ip: str | None
    bind_ip: str
    advertised_ip: str


@dataclass(frozen=True)
class Plan:
    version: str
    profile_hash: str
    project: str
    host_kind: str
    timezone: str
    network: NetworkPlan
    rtp: RtpRange
    sip_port: int
    listen: dict[str, int]
    images: dict[str, ServiceImage]
    limits: dict[str, Limits]
    published: dict[str, tuple[PublishedPort, ...]]
    env: tuple[EnvSection, ...]
    workers: dict[str, int]
    outputs: tuple[tuple[str, str], ...] = field(default=())

    @property
    def env_map(self) -> dict[str, str]:
        return {var.key: var.value for section in self.env for var in section.variables}

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(var.value for section in self.env for var in section.variables if var.secret)

    @property
    def all_published(self) -> tuple[PublishedPort, ...]:
        return tuple(port for ports in self.published.values() for port in ports)


OUTPUTS: tuple[tuple[str, str], ...] = (
    ("docker-compose.yml.j2", "docker-compose.yml"),
    ("env.j2", ".env"),
    ("asterisk/rtp.conf.j2", "asterisk/rtp.conf"),
    ("asterisk/pjsip.conf.j2", "asterisk/pjsip.conf"),
    ("nginx/nginx.conf.j2", "nginx/nginx.conf"),
)

SECRET_FILES = frozenset({".env"})


def profile_hash(profile: Profile) -> str:
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()


def _url_secret(value: str) -> str:
    """Percent-encode a credential for the userinfo part of a URL (RFC 3986)."""
    return quote(value, safe="")


def _nth_host(subnet: ipaddress.IPv4Network, n: int) -> str:
    return str(subnet.network_address + n)


def _limits(profile: Profile) -> dict[str, Limits]:
    calls = profile.capacity.concurrent_calls
    asterisk_mb = 512 + 4 * calls
    return {
        "postgresql": Limits("1024M", "2.0", 512),
        "dialer-postgresql": Limits("512M", "1.0", 256),
        "redis": Limits("256M", "0.5", 128),
        "minio": Limits("512M", "1.0", 256),
        "gearman": Limits("128M", "0.5", 128),
        "django-app": Limits("1024M", "2.0", 512),
        "websockets": Limits("256M", "0.5", 256),
        "celery-worker": Limits("512M", "1.0", 256),
        "celery-beat": Limits("256M", "0.5", 128),
        "asterisk": Limits(f"{asterisk_mb}M", "2.0", 1024 + 4 * calls),
        "dialer-api": Limits("256M", "0.5", 256),
        "dialer-worker": Limits("256M", "0.5", 128),
        "frontend": Limits("128M", "0.5", 128),
        "nginx": Limits("128M", "0.5", 128),
    }


def _published(profile: Profile, rtp: RtpRange) -> dict[str, tuple[PublishedPort, ...]]:
    bind = str(profile.network.bind_ip)
    sip = profile.ports.sip

    def single(service: str, ip: str, host: int, container: int, protocol: str, purpose: str) -> PublishedPort:
        return PublishedPort(service, ip, host, host, container, container, protocol, purpose)

    published: dict[str, tuple[PublishedPort, ...]] = {
        "asterisk": (
            single("asterisk", bind, sip, sip, "udp", "SIP"),
            single("asterisk", bind, sip, sip, "tcp", "SIP"),
            PublishedPort("asterisk", bind, rtp.start, rtp.end, rtp.start, rtp.end, "udp", "RTP media"),
        ),
        "nginx": (
            single("nginx", bind, profile.ports.http, LISTEN["nginx-http"], "tcp", "HTTP (redirect)"),
            single("nginx", bind, profile.ports.https, LISTEN["nginx-https"], "tcp", "HTTPS web UI"),
        ),
    }
    if profile.network.expose_internal:
        loopback = "127.0.0.1"
        published["postgresql"] = (single("postgresql", loopback, 5432, 5432, "tcp", "PostgreSQL (debug)"),)
        published["dialer-postgresql"] = (
            single("dialer-postgresql", loopback, 5433, 5432, "tcp", "dialer PostgreSQL (debug)"),
        )
        published["redis"] = (single("redis", loopback, 6379, 6379, "tcp", "Redis (debug)"),)
        published["minio"] = (single("minio", loopback, 9001, 9001, "tcp", "MinIO console (debug)"),)
        published["gearman"] = (single("gearman", loopback, 4730, 4730, "tcp", "Gearman (debug)"),)
    return published


def _allowed_hosts(profile: Profile) -> str:
    hosts = ["localhost", "127.0.0.1"]
    if profile.project.domain:
        hosts.append(profile.project.domain)
    if profile.network.public_ip:
        hosts.append(str(profile.network.public_ip))
    if not profile.network.bind_ip.is_unspecified:
        hosts.append(str(profile.network.bind_ip))
    return ",".join(dict.fromkeys(hosts))


def _env(profile: Profile, secrets: Secrets, rtp: RtpRange, sip_port: int) -> tuple[EnvSection, ...]:
    def value(name: str) -> str:
        resolved = getattr(secrets, name)
        assert resolved is not None, f"secret {name} was not resolved"
        return str(resolved)

    db = profile.database
    redis_password = value("redis_password")
    redis_base = f"redis://:{_url_secret(redis_password)}@redis:{LISTEN['redis']}"
    postgres_url = (
        f"postgres://{db.user}:{_url_secret(value('postgres_password'))}"
        f"@postgresql:{LISTEN['postgresql']}/{db.name}"
    )
    dialer_url = (
        f"postgres://{db.dialer_user}:{_url_secret(value('dialer_postgres_password'))}"
        f"@dialer-postgresql:{LISTEN['dialer-postgresql']}/{db.dialer_name}"
    )
    advertised_ip = str(profile.network.public_ip or profile.network.bind_ip)

    def plain(key: str, val: str | int) -> EnvVar:
        return EnvVar(key, str(val))

    def secret(key: str, val: str) -> EnvVar:
        return EnvVar(key, val, secret=True)

    return (
        EnvSection("General", (plain("TZ", profile.project.timezone),)),
        EnvSection(
            "PostgreSQL",
            (
                plain("POSTGRES_HOSTNAME", "postgresql"),
                plain("POSTGRES_PORT", LISTEN["postgresql"]),
                plain("POSTGRES_DB", db.name),
                plain("POSTGRES_USER", db.user),
                secret("POSTGRES_PASSWORD", value("postgres_password")),
                secret("DATABASE_URL", postgres_url),
            ),
        ),
        EnvSection(
            "Dialer PostgreSQL",
            (
                plain("DIALER_POSTGRES_SERVER", "dialer-postgresql"),
                plain("DIALER_POSTGRES_PORT", LISTEN["dialer-postgresql"]),
                plain("DIALER_POSTGRES_DB", db.dialer_name),
                plain("DIALER_POSTGRES_USER", db.dialer_user),
                secret("DIALER_POSTGRES_PASSWORD", value("dialer_postgres_password")),
                secret("DIALER_DATABASE_URL", dialer_url),
            ),
        ),
        EnvSection(
            "Redis",
            (
                plain("REDIS_HOSTNAME", "redis"),
                plain("REDIS_PORT", LISTEN["redis"]),
                secret("REDIS_PASSWORD", redis_password),
                secret("REDIS_URL", f"{redis_base}/0"),
                secret("CELERY_BROKER_URL", f"{redis_base}/0"),
                secret("CELERY_RESULT_BACKEND", f"{redis_base}/1"),
                secret("DIALER_REDIS_URL", f"{redis_base}/3"),
            ),
        ),
        EnvSection(
            "MinIO object storage",
            (
                plain("MINIO_ROOT_USER", profile.storage.root_user),
                secret("MINIO_ROOT_PASSWORD", value("minio_root_password")),
                plain("BUCKET_NAME", profile.storage.bucket),
                plain("BUCKET_ENDPOINT_MINIO", f"http://minio:{LISTEN['minio']}"),
                plain("S3_STORAGE_ENABLED", "true"),
            ),
        ),
        EnvSection(
            "Django",
            (
                secret("DJANGO_SECRET_KEY", value("django_secret_key")),
                plain("DJANGO_DEBUG", "false"),
                plain("DJANGO_ALLOWED_HOSTS", _allowed_hosts(profile)),
                plain("DJANGO_PORT", LISTEN["django-app"]),
                plain("WEBSOCKET_PORT", LISTEN["websockets"]),
            ),
        ),
        EnvSection(
            "Gearman",
            (
                plain("GEARMAN_HOSTNAME", "gearman"),
                plain("GEARMAN_PORT", LISTEN["gearman"]),
            ),
        ),
        EnvSection(
            "Asterisk",
            (
                plain("ACD_HOSTNAME", "asterisk"),
                plain("ACD_SIP_PORT", sip_port),
                plain("ACD_RTP_PORT_MIN", rtp.start),
                plain("ACD_RTP_PORT_MAX", rtp.end),
                plain("ACD_AMI_PORT", LISTEN["asterisk-ami"]),
                plain("ACD_AMI_USER", AMI_USER),
                secret("ACD_AMI_PASSWORD", value("ami_password")),
                plain("ACD_LOG_LEVEL", "3"),
                plain("EXTERNAL_IP", advertised_ip),
            ),
        ),
        EnvSection(
            "Dialer",
            (
                plain("DIALER_API_HOST", f"dialer-api:{LISTEN['dialer-api']}"),
                plain("DIALER_API_PORT", LISTEN["dialer-api"]),
                secret("DIALER_PASSWORD", value("dialer_password")),
                plain("DIALER_CAPS", "1"),
                plain("DIALER_GEARMAN_JOBS", "start-campaign|stop-campaign|resume-campaign|process-contact|schedule-contact"),
                plain("DIALER_PYTHON_LOGLEVEL", "info"),
            ),
        ),
    )


def make_plan(profile: Profile, secrets: Secrets) -> Plan:
    """Compute everything the templates print. Raises nothing: the profile is valid."""
    rtp = asterisk_range(profile.rtp.start, profile.capacity.concurrent_calls, profile.capacity.headroom_percent)
    assert rtp.end <= MAX_PORT, "profile validation admits only ranges that fit"
    subnet = profile.network.subnet
    # Only the compose subnet is local: phones on the office LAN reach Asterisk
    # through the published ports, so they must be told the host address.
    local_nets = (str(subnet),)
    advertised = profile.network.public_ip or profile.network.bind_ip
    images = profile.images
    builds = profile.build
    return Plan(
        version=__version__,
        profile_hash=profile_hash(profile),
        project=profile.project.name,
        host_kind=profile.host.kind,
        timezone=profile.project.timezone,
        network=NetworkPlan(
            name=NETWORK_NAME,
            subnet=str(subnet),
            asterisk_ip=_nth_host(subnet, 10),
            local_nets=local_nets,
            public_ip=str(profile.network.public_ip) if profile.network.public_ip else None,
            bind_ip=str(profile.network.bind_ip),
            advertised_ip=str(advertised),
        ),
        rtp=rtp,
        sip_port=profile.ports.sip,
        listen=dict(LISTEN),
        images={
            "postgres": ServiceImage(images.postgres, None),
            "redis": ServiceImage(images.redis, None),
            "minio": ServiceImage(images.minio, None),
            "gearman": ServiceImage(images.gearman, None),
            "backend": ServiceImage(images.backend, builds.backend),
            "websockets": ServiceImage(images.websockets, builds.websockets),
            "asterisk": ServiceImage(images.asterisk, builds.asterisk),
            "dialer_api": ServiceImage(images.dialer_api, builds.dialer_api),
            "dialer_worker": ServiceImage(images.dialer_worker, builds.dialer_worker),
            "frontend": ServiceImage(images.frontend, builds.frontend),
            "nginx": ServiceImage(images.nginx, None),
        },
        limits=_limits(profile),
        published=_published(profile, rtp),
        env=_env(profile, secrets, rtp, profile.ports.sip),
        workers={
            "celery": profile.workers.celery,
            "celery_concurrency": profile.workers.celery_concurrency,
            "dialer": profile.workers.dialer,
        },
        outputs=OUTPUTS,
    )
