"""The deployment's compose services: which role runs each, whom each connects to, what each reads.

A fact about a service is written here once; placement.py places the roles on [[hosts]],
addressing.py counts the containers that need an address, plan.py and cluster.py print them.
The application's own services' contract (ports, variables, logins) is application.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omnigen.catalog.application import SERVICE_ENV

Role = Literal["data", "web", "voice", "edge"]
ROLES: tuple[Role, ...] = ("data", "web", "voice", "edge")

# The compose services of each role. Asterisk runs once per voice host.
ROLE_SERVICES: dict[Role, tuple[str, ...]] = {
    "data": ("minio", "postgresql", "redis"),
    "web": ("celery-beat", "celery-worker", "dialer-api", "dialer-worker", "django-app", "frontend", "websockets"),
    "voice": ("asterisk",),
    "edge": ("nginx",),
}
# Roles held by exactly one host: one PostgreSQL, one app, one entry point.
SINGLE_HOST_ROLES: tuple[Role, ...] = ("data", "web", "edge")
ROLE_DESCRIPTIONS: dict[Role, str] = {
    "data": "PostgreSQL, Redis, MinIO",
    "web": "Django app, websockets, front-end, Celery, dialer API and workers",
    "voice": "one Asterisk per voice host, with its own share of the calls and its own RTP range",
    "edge": "nginx: the web UI's HTTP/HTTPS entry point",
}

# The data services a client connects to (from the variables each service is given in
# docker-compose.yml.j2). A data service is published on the data host's private address
# only when one of its clients runs on another host.
CLIENT_NEEDS: dict[str, tuple[str, ...]] = {
    "celery-beat": ("redis",),
    "celery-worker": ("asterisk", "minio", "postgresql", "redis"),
    "dialer-api": ("asterisk", "redis"),
    "dialer-worker": ("redis",),
    "django-app": ("asterisk", "minio", "postgresql", "redis"),
    "websockets": ("redis",),
}

# The .env variables each service's compose definition reads (`${VAR}` in docker-compose.yml.j2 and
# stack.yml.j2): the application's from its contract (catalog/application.SERVICE_ENV), the data services' and
# the edge's from their images. A host's bundle .env holds only what its services read, so a voice host
# never holds the Django secret key; the verify stage checks that every `${VAR}` resolves and every .env key is read.
SERVICE_ENV_KEYS: dict[str, tuple[str, ...]] = {
    **{service: tuple(sorted({ref.key for ref in refs if ref.key})) for service, refs in SERVICE_ENV.items()},
    "minio": ("MINIO_ROOT_PASSWORD", "MINIO_ROOT_USER", "TZ"),
    "nginx": ("TZ",),
    "postgresql": ("POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_USER", "TZ"),
    "redis": ("REDIS_PASSWORD", "TZ"),
}


# Services whose containers have fixed addresses in the compose subnet's lower half (a config names
# them by IP): Asterisk and the WebRTC edge. Every other service, and each replica, gets a dynamic one.
FIXED_ADDRESS_SERVICES = ("asterisk", "kamailio", "rtpengine")
DYNAMIC_ADDRESS_SERVICES = tuple(
    sorted({service for services in ROLE_SERVICES.values() for service in services} - set(FIXED_ADDRESS_SERVICES))
)


@dataclass(frozen=True)
class HealthTiming:
    """How often Docker asks a service whether it is healthy, how long it waits, and how long it is patient at start."""

    interval: str
    timeout: str
    retries: int
    start_period: str


# Every service's health-check timing, printed the same in docker-compose.yml and stack.yml. Workers and beat
# answer slowly (a Celery ping crosses Redis); django-app migrates before it serves.
HEALTH_TIMING: dict[str, HealthTiming] = {
    "asterisk": HealthTiming("15s", "5s", 5, "30s"),
    "celery-beat": HealthTiming("30s", "5s", 3, "30s"),
    "celery-worker": HealthTiming("30s", "15s", 3, "30s"),
    "dialer-api": HealthTiming("15s", "5s", 5, "20s"),
    "dialer-worker": HealthTiming("30s", "15s", 3, "30s"),
    "django-app": HealthTiming("15s", "5s", 5, "60s"),
    "frontend": HealthTiming("30s", "5s", 3, "10s"),
    "kamailio": HealthTiming("15s", "5s", 5, "10s"),
    "minio": HealthTiming("15s", "10s", 5, "20s"),
    "nginx": HealthTiming("15s", "5s", 5, "10s"),
    "postgresql": HealthTiming("10s", "5s", 5, "20s"),
    "redis": HealthTiming("10s", "5s", 5, "10s"),
    "rtpengine": HealthTiming("15s", "5s", 5, "10s"),
    "websockets": HealthTiming("15s", "5s", 5, "20s"),
}
