"""The deployment's compose services: one entry each, everything about a service that no profile changes.

`SERVICES` is the one list of services. An entry says which image the service runs, which
role places it on [[hosts]], the ports it listens on and exposes, whom it waits for and
connects to, the files it mounts, the variables it reads, its command, health check, user,
capabilities and default resources. plan.py resolves each running service's entry for one
profile into the ServiceDefinition both compose templates print (templates/_service.j2);
placement.py places the roles, addressing.py counts the containers that need an address,
sizing.py sizes them. Adding a service is adding an entry here.

The functions below read SERVICES at call time, and so do the plan, placement and sizing, so a
test that registers an extra entry sees it everywhere a service is printed, placed or sized. The
tables of ports and volumes that other modules keep (plan.LISTEN, plan.VOLUME_MOUNTS,
placement.PEER_PORTS) are derived from the entries when omnigen is imported.
The application's own contract (ports, variables, logins) is application.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from omnigen.catalog.application import (
    APP_LISTEN,
    BACKEND_CELERY_APP,
    BACKEND_SETTINGS_FILE,
    BACKEND_SETTINGS_TARGET,
    DIALER_CELERY_APP,
    HEALTH_PATHS,
    ROOT_MASTER_CAPABILITIES,
    SERVICE_ENV,
    EnvRef,
)

Role = Literal["data", "web", "voice", "edge"]
ROLES: tuple[Role, ...] = ("data", "web", "voice", "edge")
# Roles held by exactly one host: one PostgreSQL, one app, one entry point.
SINGLE_HOST_ROLES: tuple[Role, ...] = ("data", "web", "edge")
ROLE_DESCRIPTIONS: dict[Role, str] = {
    "data": "PostgreSQL, Redis, MinIO",
    "web": "Django app, websockets, front-end, Celery, dialer API and workers",
    "voice": "one Asterisk per voice host, with its own share of the calls and its own RTP range",
    "edge": "nginx: the web UI's HTTP/HTTPS entry point",
}

# A part of the deployment a profile switches on: tls.mode = "acme", components.webrtc.
Feature = Literal["acme", "webrtc"]

# --- Paths inside the containers (and beside docker-compose.yml) that mounts and configs agree on ---

# The operator's own Asterisk config (docs/site-config.md), mounted read-only; generated configs #tryinclude it.
SITE_HOST_DIR = "./site/asterisk"
SITE_CONTAINER_DIR = "/etc/asterisk/site"
SITE_INCLUDE_DIR = "site"  # relative to Asterisk's astetcdir (/etc/asterisk), as #tryinclude resolves it
# The certificate nginx serves: ./certs next to docker-compose.yml, mounted read-only.
TLS_HOST_DIR = "./certs"
TLS_CONTAINER_DIR = "/etc/nginx/certs"
# tls.mode = "acme": lego's state folder beside docker-compose.yml, shared with nginx, and the self-signed pair it starts from.
ACME_HOST_DIR = "./acme"
ACME_STATE_DIR = "/var/lib/acme"
ACME_LIVE_DIR = f"{ACME_STATE_DIR}/live"
ACME_BOOTSTRAP_DIR = "/bootstrap"
ACME_CLIENT_SCRIPT = "/usr/local/bin/acme-renew.sh"
NGINX_RELOAD_SCRIPT = "/usr/local/bin/nginx-reload-on-renewal.sh"
NGINX_CONFIG = "/etc/nginx/nginx.conf"
BACKEND_STARTUP_SCRIPT = "/omnigen/startup.sh"
KAMAILIO_CONFIG = "/etc/kamailio/kamailio.cfg"
KAMAILIO_DISPATCHER_LIST = "/etc/kamailio/dispatcher.list"
RTPENGINE_CONFIG = "/etc/rtpengine/rtpengine.conf"

# nginxinc/nginx-unprivileged runs as this user and group: the private key must be readable by it alone,
# and the ACME client runs as it too (it writes what nginx reads).
NGINX_UID = NGINX_GID = 101


@dataclass(frozen=True)
class HealthTiming:
    """How often Docker asks a service whether it is healthy, how long it waits, and how long it is patient at start."""

    interval: str
    timeout: str
    retries: int
    start_period: str


@dataclass(frozen=True)
class Want:
    """What one replica of a service wants before the host caps it (sizing.py caps it)."""

    memory_limit_mib: int
    memory_reservation_mib: int
    cpus_limit: float
    cpus_reservation: float
    pids: int


@dataclass(frozen=True)
class Param:
    """An argument the profile decides (`prefix` + the plan's value of `name`): --concurrency=4, -m 64."""

    name: str
    prefix: str = ""


Arg = str | Param


@dataclass(frozen=True)
class Mount:
    """A bind mount of a file or folder beside docker-compose.yml. `outputs`: every generated file under
    `source` (a folder), each at the same name under `target`."""

    source: str
    target: str
    read_only: bool = True
    when: Feature | None = None
    outputs: bool = False


@dataclass(frozen=True)
class Service:
    """One compose service, as no profile changes it."""

    name: str
    image: str  # its `images.<key>` (and `build.<key>` for the application's)
    healthcheck: tuple[str | EnvRef, ...]  # `test:`; an EnvRef argument is a variable Compose fills
    health_timing: HealthTiming
    role: Role | None = None  # None: single-host only (the ACME client and the WebRTC edge)
    when: Feature | None = None  # runs only when the profile switches this on
    listen: Mapping[str, int] = field(default_factory=dict)  # its ports on the compose network, by name
    expose: tuple[str, ...] = ()  # `listen` names other services reach (compose `expose`)
    depends_on: tuple[str, ...] = ()  # healthy before it starts, when they run beside it
    clients: tuple[str, ...] = ()  # the services it connects to ([[hosts]]: published for it when elsewhere)
    mounts: tuple[Mount, ...] = ()  # bind mounts, before its named volumes
    # The named volumes it mounts (their keys are the profile's [volumes] keys) and where.
    volumes: tuple[tuple[str, str], ...] = ()
    volumes_read_only: bool = False  # it only reads them (nginx serves the app's static and media files)
    environment: tuple[EnvRef, ...] = ()  # what it reads; the secret ones reach it through secrets/<name>.env
    address: int | None = None  # its fixed host number in the compose subnet's lower half (a config names it by IP)
    joins_lan: bool = False  # network.mode ipvlan/macvlan: it joins the LAN with its own address
    comment: tuple[str, ...] = ()  # printed above its command: why the command looks as it does
    entrypoint: tuple[Arg, ...] = ()  # replaces the image's
    command: tuple[Arg, ...] = ()
    command_when: Feature | None = None  # its command is printed only with this feature
    user: str | None = None
    cap_add: tuple[str, ...] = ()  # given back after cap_drop ALL
    replicas: Literal["celery", "dialer"] | None = None  # its replicas are workers.<this>
    resources: Want | None = None  # default wants; sizing.py computes the ones that grow with the calls
    # docker-compose.yml prints a blank line before the service. The ACME client and Asterisk were
    # written without one before issue 15; outputs must not change by a byte, so the catalog says so.
    gap: bool = True


def _http_check(port: int, path: str) -> tuple[str, ...]:
    # urlopen raises on anything but a 2xx answer; the dialer image's own HEALTHCHECK (httpx.get) does not.
    # The URL is an argument, so each YAML line stays short.
    return ("CMD", "python", "-c", "import sys, urllib.request as r; r.urlopen(sys.argv[1], timeout=3)", f"http://127.0.0.1:{port}{path}")


# components/dialer/api/main.py:126 uses Field(regex=...), which pydantic 2 (its requirements.txt:3 pins 2.5.0)
# refuses at import: the API never starts. The entrypoint writes a copy of main.py with that keyword renamed
# to pattern= (pydantic 2's name for the same constraint) to /tmp and runs the image's command on the copy,
# leaving the image untouched; once upstream is fixed the rename matches nothing and the copy is the file.
DIALER_API_PATCH = "sed 's/\\bregex=/pattern=/g' main.py >/tmp/main.py && exec \"$@\""

# Ports the images of the data services, the edge and the WebRTC edge listen on (their images' defaults,
# or set by the command below); the application's are its code's (application.APP_LISTEN).
POSTGRES_PORT = 5432
REDIS_PORT = 6379
MINIO_PORT = 9000
MINIO_CONSOLE_PORT = 9001
NGINX_HTTP_PORT = 8080
NGINX_HTTPS_PORT = 8443
KAMAILIO_CTL_PORT = 2046
RTPENGINE_HTTP_PORT = 2225
# The backend's settings overlay (application.BACKEND_SETTINGS_MODULE), in every process that loads its settings.
_BACKEND_SETTINGS = Mount(f"./{BACKEND_SETTINGS_FILE}", BACKEND_SETTINGS_TARGET)

# redis-server reads its configuration on stdin: the password never reaches a command line.
REDIS_STARTUP = """set -eu
if [ -z "${REDIS_PASSWORD:-}" ]; then
  echo "redis: REDIS_PASSWORD is empty; not starting without one" >&2
  exit 1
fi
password=$(printf %s "$REDIS_PASSWORD" | od -An -v -tx1 |
  tr -d ' \\n' | sed 's/../\\\\x&/g')
[ -n "$password" ] || exit 1
exec redis-server - --port PORT --appendonly yes <<EOF
requirepass "$password"
EOF
""".replace("PORT", str(REDIS_PORT))

_TZ = EnvRef("TZ", "TZ")
_WORKER_TIMING = HealthTiming("30s", "15s", 3, "30s")

SERVICES: tuple[Service, ...] = (
    Service(
        "acme",
        image="acme",
        when="acme",
        mounts=(
            Mount(ACME_HOST_DIR, ACME_STATE_DIR, read_only=False),
            Mount(TLS_HOST_DIR, ACME_BOOTSTRAP_DIR),
            Mount("./tls/acme-renew.sh", ACME_CLIENT_SCRIPT),
        ),
        environment=(_TZ,),
        entrypoint=("/bin/sh", ACME_CLIENT_SCRIPT),
        healthcheck=("CMD", "test", "-s", f"{ACME_LIVE_DIR}/fullchain.pem"),
        health_timing=HealthTiming("15s", "5s", 5, "10s"),
        user=f"{NGINX_UID}:{NGINX_GID}",
        # lego: idle between checks, a Go process of ~30 MiB while it talks to the CA.
        resources=Want(128, 16, 0.5, 0.01, 64),
        gap=False,
    ),
    Service(
        "asterisk",
        image="asterisk",
        role="voice",
        listen={"asterisk-ami": APP_LISTEN["asterisk-ami"], "asterisk-http": APP_LISTEN["asterisk-http"]},
        expose=("asterisk-ami", "asterisk-http"),
        mounts=(Mount("./asterisk", "/etc/asterisk", outputs=True), Mount(SITE_HOST_DIR, SITE_CONTAINER_DIR)),
        volumes=(("asterisk_logs", "/var/log/asterisk"), ("asterisk_sounds", "/var/lib/asterisk/sounds"), ("asterisk_spool", "/var/spool/asterisk")),
        environment=SERVICE_ENV["asterisk"],
        address=10,
        joins_lan=True,
        healthcheck=("CMD", "asterisk", "-rx", "core show uptime"),
        health_timing=HealthTiming("15s", "5s", 5, "30s"),
        gap=False,
    ),
    Service(
        "celery-beat",
        image="backend",
        role="web",
        depends_on=("django-app", "redis"),
        clients=("redis",),
        mounts=(_BACKEND_SETTINGS,),
        environment=SERVICE_ENV["celery-beat"],
        entrypoint=(
            "celery", "-A", BACKEND_CELERY_APP, "beat", "--loglevel=info", "--pidfile=/tmp/celerybeat.pid", "--schedule=/tmp/celerybeat-schedule",
        ),
        healthcheck=("CMD", "test", "-s", "/tmp/celerybeat.pid"),
        health_timing=HealthTiming("30s", "5s", 3, "30s"),
        resources=Want(256, 64, 0.5, 0.01, 128),
    ),
    Service(
        "celery-worker",
        image="backend",
        role="web",
        depends_on=("django-app", "redis"),
        clients=("asterisk", "minio", "postgresql", "redis"),
        mounts=(_BACKEND_SETTINGS,),
        volumes=(("django_logs", "/app/logs"), ("django_media", "/app/media")),
        environment=SERVICE_ENV["celery-worker"],
        entrypoint=("celery", "-A", BACKEND_CELERY_APP, "worker", "--loglevel=info", Param("celery_concurrency", "--concurrency=")),
        healthcheck=("CMD-SHELL", f"celery -A {BACKEND_CELERY_APP} inspect ping -d celery@$HOSTNAME"),
        health_timing=_WORKER_TIMING,
        replicas="celery",
    ),
    Service(
        "dialer-api",
        image="dialer_api",
        role="web",
        listen={"dialer-api": APP_LISTEN["dialer-api"]},
        expose=("dialer-api",),
        depends_on=("redis",),
        clients=("asterisk", "redis"),
        environment=SERVICE_ENV["dialer-api"],
        entrypoint=("/bin/sh", "-c", DIALER_API_PATCH, "dialer-api"),
        # The image's CMD (components/dialer/api/Dockerfile:37), importing main from the copy in /tmp.
        command=("uvicorn", "--app-dir", "/tmp", "main:app", "--host", "0.0.0.0", "--port", str(APP_LISTEN["dialer-api"]), "--workers", "2"),
        healthcheck=_http_check(APP_LISTEN["dialer-api"], HEALTH_PATHS["dialer-api"]),
        health_timing=HealthTiming("15s", "5s", 5, "20s"),
        resources=Want(256, 48, 0.5, 0.02, 256),
    ),
    Service(
        "dialer-worker",
        image="dialer_worker",
        role="web",
        depends_on=("dialer-api", "redis"),
        clients=("redis",),
        environment=SERVICE_ENV["dialer-worker"],
        healthcheck=("CMD-SHELL", f"celery -A {DIALER_CELERY_APP} inspect ping -d celery@$HOSTNAME"),
        health_timing=_WORKER_TIMING,
        replicas="dialer",
        resources=Want(256, 32, 0.5, 0.01, 128),
    ),
    Service(
        "django-app",
        image="backend",
        role="web",
        listen={"django-app": APP_LISTEN["django-app"]},
        expose=("django-app",),
        depends_on=("minio", "postgresql", "redis"),
        clients=("asterisk", "minio", "postgresql", "redis"),
        mounts=(Mount("./backend/startup.sh", BACKEND_STARTUP_SCRIPT), _BACKEND_SETTINGS),
        volumes=(("django_logs", "/app/logs"), ("django_media", "/app/media"), ("django_static", "/app/static")),
        environment=SERVICE_ENV["django-app"],
        entrypoint=("/bin/sh", BACKEND_STARTUP_SCRIPT),
        # The image's CMD (components/backend/Dockerfile:73); compose clears it when the entrypoint is replaced.
        command=(
            "gunicorn", "omnivoip.wsgi:application", "--bind", f"0.0.0.0:{APP_LISTEN['django-app']}", "--workers", "4", "--timeout", "120",
        ),
        healthcheck=("CMD", "python", "-c", f"import socket as s; s.create_connection(('127.0.0.1', {APP_LISTEN['django-app']}), 3)"),
        health_timing=HealthTiming("15s", "5s", 5, "60s"),
        resources=Want(1024, 160, 2.0, 0.1, 512),
    ),
    Service(
        "frontend",
        image="frontend",
        role="web",
        listen={"frontend": APP_LISTEN["frontend"]},
        expose=("frontend",),
        depends_on=("django-app",),
        environment=SERVICE_ENV["frontend"],
        healthcheck=("CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{APP_LISTEN['frontend']}{HEALTH_PATHS['frontend']}"),
        health_timing=HealthTiming("30s", "5s", 3, "10s"),
        cap_add=ROOT_MASTER_CAPABILITIES,
        resources=Want(128, 8, 0.5, 0.01, 128),
    ),
    Service(
        "kamailio",
        image="kamailio",
        when="webrtc",
        listen={
            "kamailio-sip": 5060,  # UDP, Asterisk <-> Kamailio
            "kamailio-ws": 5066,  # plain WebSocket; nginx terminates TLS (WSS) in front of it
            "kamailio-ctl": KAMAILIO_CTL_PORT,  # binrpc on the container's loopback, for kamcmd in the healthcheck
        },
        depends_on=("asterisk", "rtpengine"),
        mounts=(Mount("./kamailio/kamailio.cfg", KAMAILIO_CONFIG), Mount("./kamailio/dispatcher.list", KAMAILIO_DISPATCHER_LIST)),
        environment=(_TZ, EnvRef("WEBRTC_AUTH_SECRET", "WEBRTC_AUTH_SECRET")),
        address=11,
        # -DD: stay in the foreground (Docker supervises); -E: log to stderr.
        command=("kamailio", "-DD", "-E", "-f", KAMAILIO_CONFIG, "-m", Param("kamailio_shm_mb"), "-M", Param("kamailio_pkg_mb")),
        healthcheck=("CMD", "kamcmd", "-s", f"udp:127.0.0.1:{KAMAILIO_CTL_PORT}", "core.uptime"),
        health_timing=HealthTiming("15s", "5s", 5, "10s"),
    ),
    Service(
        "minio",
        image="minio",
        role="data",
        listen={"minio": MINIO_PORT, "minio-console": MINIO_CONSOLE_PORT},
        volumes=(("minio_data", "/data"),),
        environment=(EnvRef("MINIO_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD"), EnvRef("MINIO_ROOT_USER", "MINIO_ROOT_USER"), _TZ),
        command=("server", "/data", "--address", f":{MINIO_PORT}", "--console-address", f":{MINIO_CONSOLE_PORT}"),
        healthcheck=("CMD", "mc", "ready", "local"),
        health_timing=HealthTiming("15s", "10s", 5, "20s"),
        resources=Want(512, 96, 1.0, 0.05, 256),
    ),
    Service(
        "nginx",
        image="nginx",
        role="edge",
        listen={"nginx-http": NGINX_HTTP_PORT, "nginx-https": NGINX_HTTPS_PORT},
        depends_on=("django-app", "frontend", "acme", "kamailio", "websockets"),
        mounts=(
            Mount(TLS_HOST_DIR, TLS_CONTAINER_DIR),
            Mount(ACME_HOST_DIR, ACME_STATE_DIR, when="acme"),
            Mount("./tls/nginx-reload-on-renewal.sh", NGINX_RELOAD_SCRIPT, when="acme"),
            Mount("./nginx/nginx.conf", NGINX_CONFIG),
        ),
        volumes=(("django_media", "/var/www/media"), ("django_static", "/var/www/static")),
        volumes_read_only=True,
        environment=(_TZ,),
        # In ACME mode a wrapper runs nginx and reloads it when the client installs a renewed certificate.
        command=("/bin/sh", NGINX_RELOAD_SCRIPT),
        command_when="acme",
        healthcheck=("CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{NGINX_HTTP_PORT}/healthz"),
        health_timing=HealthTiming("15s", "5s", 5, "10s"),
        resources=Want(128, 8, 0.5, 0.01, 128),
    ),
    Service(
        "postgresql",
        image="postgres",
        role="data",
        listen={"postgresql": POSTGRES_PORT},
        volumes=(("postgres_data", "/var/lib/postgresql/data"),),
        environment=(
            EnvRef("PGDATA", literal="/var/lib/postgresql/data/pgdata"),
            EnvRef("POSTGRES_DB", "POSTGRES_DB"),
            EnvRef("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
            EnvRef("POSTGRES_USER", "POSTGRES_USER"),
            _TZ,
        ),
        healthcheck=("CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(POSTGRES_PORT), "-U", EnvRef("", "POSTGRES_USER"), "-d", EnvRef("", "POSTGRES_DB")),
        health_timing=HealthTiming("10s", "5s", 5, "20s"),
        user="postgres",
        resources=Want(1024, 128, 2.0, 0.1, 512),
    ),
    Service(
        "redis",
        image="redis",
        role="data",
        listen={"redis": REDIS_PORT},
        volumes=(("redis_data", "/data"),),
        environment=(EnvRef("REDISCLI_AUTH", "REDIS_PASSWORD"), EnvRef("REDIS_PASSWORD", "REDIS_PASSWORD"), _TZ),
        comment=(
            "The password never reaches a command line (ps, docker inspect): the shell",
            "reads REDIS_PASSWORD from the environment and gives redis-server its",
            "configuration on stdin, the password as \\xHH escapes (docs/safe-output.md)",
        ),
        command=("sh", "-c", REDIS_STARTUP),
        healthcheck=("CMD-SHELL", f"redis-cli -p {REDIS_PORT} ping | grep -q PONG"),
        health_timing=HealthTiming("10s", "5s", 5, "10s"),
        user="redis",
        resources=Want(256, 16, 0.5, 0.02, 128),
    ),
    Service(
        "rtpengine",
        image="rtpengine",
        when="webrtc",
        listen={
            "rtpengine-ng": 2223,  # UDP ng control protocol, Kamailio's rtpengine_sock
            "rtpengine-http": RTPENGINE_HTTP_PORT,  # HTTP on the container's loopback: GET /ping for the healthcheck
        },
        mounts=(Mount("./rtpengine/rtpengine.conf", RTPENGINE_CONFIG),),
        environment=(_TZ,),
        address=12,
        command=("rtpengine", "--foreground", "--log-stderr", f"--config-file={RTPENGINE_CONFIG}"),
        # bash's /dev/tcp, so the image needs no HTTP client: rtpengine answers GET /ping with "pong".
        # Address, port and request are arguments ($0 $1 $2) to keep each YAML line short.
        healthcheck=("CMD", "bash", "-c", 'exec 3<>/dev/tcp/$0/$1;printf "$2">&3;grep -q pong <&3', "127.0.0.1", str(RTPENGINE_HTTP_PORT), "GET /ping HTTP/1.0\\r\\n\\r\\n"),
        health_timing=HealthTiming("15s", "5s", 5, "10s"),
    ),
    Service(
        "websockets",
        image="websockets",
        role="web",
        listen={"websockets": APP_LISTEN["websockets"]},
        expose=("websockets",),
        depends_on=("redis",),
        clients=("redis",),
        environment=SERVICE_ENV["websockets"],
        healthcheck=_http_check(APP_LISTEN["websockets"], HEALTH_PATHS["websockets"]),
        health_timing=HealthTiming("15s", "5s", 5, "20s"),
        resources=Want(256, 48, 0.5, 0.02, 256),
    ),
)  # fmt: skip


def catalog() -> tuple[Service, ...]:
    """Every service, in the order the compose files print them (by name)."""
    return SERVICES


def service(name: str) -> Service:
    return next(entry for entry in SERVICES if entry.name == name)


def runs_with(entry: Service, features: frozenset[Feature]) -> bool:
    return entry.when is None or entry.when in features


def role_services(role: str) -> tuple[str, ...]:
    """The compose services of a role. Asterisk runs once per voice host."""
    return tuple(entry.name for entry in SERVICES if entry.role == role)


def client_needs(name: str) -> tuple[str, ...]:
    """The services a client connects to (the variables it is given name them). A data service is
    published on the data host's private address only when one of its clients runs on another host."""
    return next((entry.clients for entry in SERVICES if entry.name == name), ())


def env_keys(name: str) -> tuple[str, ...]:
    """The .env keys a service's compose definition reads (`${VAR}`): a host's bundle .env holds only what its
    services read, so a voice host never holds the Django secret key; verify checks every `${VAR}` resolves."""
    return tuple(sorted({ref.key for ref in service(name).environment if ref.key}))


def listen_ports() -> dict[str, int]:
    """Every port a service listens on inside the compose network, by name. Clients are told these,
    never a host-side port."""
    return {key: port for entry in SERVICES for key, port in entry.listen.items()}


def listen_owner(key: str) -> str:
    """The service that listens on a `listen_ports()` port (asterisk-ami -> asterisk)."""
    return next(entry.name for entry in SERVICES if key in entry.listen)


def fixed_address_services() -> tuple[str, ...]:
    """Services whose containers have fixed addresses in the compose subnet's lower half (a config names
    them by IP). Every other service, and each replica, gets a dynamic one."""
    return tuple(entry.name for entry in SERVICES if entry.address is not None)


def dynamic_address_services() -> tuple[str, ...]:
    """The services of the roles that take an address from Docker's dynamic half."""
    return tuple(entry.name for entry in SERVICES if entry.role is not None and entry.address is None)


def resolve(args: tuple[Arg, ...], params: Mapping[str, object]) -> tuple[str, ...]:
    """An argv with the profile's values in place of its Params."""
    return tuple(arg if isinstance(arg, str) else f"{arg.prefix}{params[arg.name]}" for arg in args)
