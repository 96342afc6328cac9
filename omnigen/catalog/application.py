"""The OmniVoIP application's contract, as its components' code states it (docs/application.md).

Everything a generated service must match because the application's code says so lives here,
once: the port each component listens on, where its image's build context sits in a checkout,
the variables each component reads and which `.env` key fills each one, the Asterisk users the
clients log in with, and the image defects the deployment works around. plan.py turns these
into a Plan, templates print them, placement.py and the verify stage read them back.
References are `path:line` in the OmniVoIP repository.
"""

from __future__ import annotations

from dataclasses import dataclass

# Ports the application's processes listen on inside their containers.
APP_LISTEN = {
    "django-app": 8000,  # components/backend/Dockerfile:73 (gunicorn --bind 0.0.0.0:8000)
    "websockets": 8000,  # components/websockets/Dockerfile:31
    "dialer-api": 8001,  # components/dialer/api/Dockerfile:37
    "frontend": 80,  # components/frontend/nginx.conf:2
    "asterisk-ami": 5038,  # manager.conf (generated)
    "asterisk-http": 8088,  # http.conf (generated): ARI
}

# nginx:alpine's master (the frontend image, components/frontend/Dockerfile:26) runs as root: it chowns
# its temp folders and switches its workers to `nginx`. With cap_drop ALL these three, and only these,
# come back (docs/application.md); policy rule OV102 admits exactly this set.
ROOT_MASTER_CAPABILITIES = ("CHOWN", "SETGID", "SETUID")

# The asterisk user of the Asterisk image (components/asterisk/Dockerfile:12 installs Alpine 3.18's
# asterisk package, whose pre-install script runs `adduser -S ... -G asterisk asterisk`: the first free
# system ids, 100 and 101 after the base image's `users` group 100; the Dockerfile's USER asterisk).
# manager.conf and ari.conf hold secrets (0600) and are bind-mounted, so this user must own them.
ASTERISK_UID = 100
ASTERISK_GID = 101

# Where each OmniVoIP image's Dockerfile sits in a checkout of the repository (the `images.*` key).
COMPONENT_CONTEXTS = {
    "backend": "components/backend",
    "websockets": "components/websockets",
    "asterisk": "components/asterisk",
    "dialer_api": "components/dialer/api",
    "dialer_worker": "components/dialer/worker",
    "frontend": "components/frontend",
    "kamailio": "components/kamailio",
    "rtpengine": "components/rtpengine",
}
WEBRTC_IMAGES = ("kamailio", "rtpengine")

# Health endpoints the components serve (HTTP GET, 2xx when healthy).
HEALTH_PATHS = {
    "websockets": "/health",  # components/websockets/main.py:47
    "dialer-api": "/health",  # components/dialer/api/main.py:333
    "frontend": "/health",  # components/frontend/nginx.conf:33
}

# Variables that hold URLs browsers use, not addresses a service connects to (settings/base.py:174).
BROWSER_ORIGIN_VARIABLES = frozenset({"CORS_ALLOWED_ORIGINS"})

# The backend's settings module for every backend process: omnigen's generated overlay of the image's
# production settings (backend/omnigen_settings.py, mounted beside them), which works around two image
# defects (IMAGE_NOTES). The overlay imports BACKEND_BASE_SETTINGS and changes nothing else.
BACKEND_BASE_SETTINGS = "production"  # omnivoip/settings/production.py
BACKEND_SETTINGS_MODULE = "omnivoip.settings.omnigen"
BACKEND_SETTINGS_FILE = "backend/omnigen_settings.py"
BACKEND_SETTINGS_TARGET = "/app/omnivoip/settings/omnigen.py"
# The cache's Redis database (settings/base.py:216: redis://REDIS_HOST:REDIS_PORT/1).
BACKEND_CACHE_DATABASE = 1
# Celery application modules: the backend's (omnivoip/celery.py:11) and the dialer worker's (tasks.py:34).
BACKEND_CELERY_APP = "omnivoip.celery"
DIALER_CELERY_APP = "tasks"
# The backend's local Django apps with models (apps/*/models.py; apps/api has none): none ships a
# migrations folder (docs/application.md, backend item 3).
BACKEND_LOCAL_APPS = ("users", "campaigns", "contacts", "calls", "agents", "queues", "reports")
# The backend's user model signs in by e-mail and requires these names (apps/users/models.py:78-79).
SUPERUSER_FIRST_NAME = "OmniVoIP"
SUPERUSER_LAST_NAME = "Administrator"


@dataclass(frozen=True)
class AsteriskLogin:
    """One AMI or ARI user: the name in manager.conf/ari.conf, the secret that fills it, who logs in with it."""

    user: str
    secret: str  # the Secrets field
    clients: tuple[str, ...]
    read: str = ""  # AMI permission classes (manager.conf read=/write=)
    write: str = ""


# The backend's AMI user (settings/base.py:288-291) and the dialer's (dialer/api/main.py:34-37),
# with the permissions the reference manager.conf gives them (docker-compose/configs/asterisk/manager.conf:44-45,62-63).
AMI_LOGINS = (
    AsteriskLogin("omnivoip", "ami_password", ("django-app", "celery-worker"), "system,call,log,agent,user,cdr,dialplan,originate,reporting", "system,call,agent,user,originate,dialplan"),
    AsteriskLogin("dialer", "dialer_ami_password", ("dialer-api",), "system,call,log,agent,user,cdr,originate,reporting", "call,originate,dialplan"),
)
# The backend's ARI user (settings/base.py:293-296).
ARI_LOGINS = (AsteriskLogin("omnivoip", "ari_password", ("django-app", "celery-worker")),)


@dataclass(frozen=True)
class EnvRef:
    """One variable a component reads (`name`) and where its value comes from: a `.env` key, or a fixed value."""

    name: str
    key: str | None = None
    literal: str | None = None


def _from_env(*pairs: str) -> tuple[EnvRef, ...]:
    """`NAME` reads .env key NAME; `NAME=KEY` reads .env key KEY."""
    refs = []
    for pair in pairs:
        name, _, key = pair.partition("=")
        refs.append(EnvRef(name, key or name))
    return tuple(refs)


# What the backend's settings read (components/backend/omnivoip/settings/base.py, production.py), for
# every process that loads them. celery.py:9 and manage.py:9 default to development settings.
_BACKEND_SETTINGS = (
    EnvRef("DJANGO_SETTINGS_MODULE", literal=BACKEND_SETTINGS_MODULE),
    *_from_env(
        "ALLOWED_HOSTS=DJANGO_ALLOWED_HOSTS",
        "ASTERISK_AMI_HOST",
        "ASTERISK_AMI_PORT",
        "ASTERISK_AMI_SECRET",
        "ASTERISK_AMI_USER",
        "ASTERISK_ARI_HOST",
        "ASTERISK_ARI_PASSWORD",
        "ASTERISK_ARI_PORT",
        "ASTERISK_ARI_USER",
        "BUCKET_NAME",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "CORS_ALLOWED_ORIGINS",
        "DEBUG=DJANGO_DEBUG",
        "MINIO_ACCESS_KEY=MINIO_ROOT_USER",
        "MINIO_ENDPOINT=BUCKET_ENDPOINT_MINIO",
        "MINIO_SECRET_KEY=MINIO_ROOT_PASSWORD",
        "POSTGRES_DB",
        "POSTGRES_HOST=POSTGRES_HOSTNAME",
        "POSTGRES_PASSWORD",
        "POSTGRES_PORT",
        "POSTGRES_USER",
        "REDIS_HOST=REDIS_HOSTNAME",
        "REDIS_PASSWORD",
        "REDIS_PORT",
        "S3_STORAGE_ENABLED",
        "SECRET_KEY=DJANGO_SECRET_KEY",
        "TZ",
    ),
)

# The variables each application service is given, sorted by name. The data services' (PostgreSQL,
# Redis, MinIO) and the edge's are their images' own, in their entries of catalog/services.py.
SERVICE_ENV: dict[str, tuple[EnvRef, ...]] = {
    # Asterisk reads no variables (components/asterisk/Dockerfile has no entrypoint): these restate, for
    # people and for the multi-host cross-checks, what its generated rtp.conf and pjsip.conf say.
    "asterisk": _from_env("ACD_HOSTNAME", "ACD_RTP_PORT_MAX", "ACD_RTP_PORT_MIN", "ACD_SIP_PORT", "EXTERNAL_IP", "TZ"),
    "celery-beat": (
        EnvRef("DJANGO_SETTINGS_MODULE", literal=BACKEND_SETTINGS_MODULE),
        *_from_env("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY=DJANGO_SECRET_KEY", "TZ"),
    ),
    "celery-worker": _BACKEND_SETTINGS,
    # The startup command's createsuperuser reads DJANGO_SUPERUSER_* (Django's `createsuperuser --noinput`).
    "django-app": (*_BACKEND_SETTINGS, *_from_env("DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")),
    # components/dialer/api/main.py:32-37: its own AMI user.
    "dialer-api": _from_env(
        "ASTERISK_AMI_HOST", "ASTERISK_AMI_PORT", "ASTERISK_AMI_SECRET=DIALER_AMI_SECRET", "ASTERISK_AMI_USER=DIALER_AMI_USER",
        "BACKEND_URL", "REDIS_URL=DIALER_REDIS_URL", "TZ",
    ),
    # components/dialer/worker/tasks.py:25-27.
    "dialer-worker": _from_env("BACKEND_URL", "DIALER_API_URL", "REDIS_URL=DIALER_REDIS_URL", "TZ"),
    "frontend": _from_env("TZ"),
    # components/websockets/main.py:26.
    "websockets": _from_env("REDIS_URL", "TZ"),
}  # fmt: skip


@dataclass(frozen=True)
class ImageNote:
    """Something about a component's image the deployment works around, or cannot."""

    service: str
    problem: str
    reference: str
    remedy: str  # what the generated deployment does; for an upstream defect, what has to change there
    worked_around: bool = True


IMAGE_NOTES = (
    ImageNote(
        "django-app, celery-worker, celery-beat",
        "the image's entrypoint waits for Redis with redis-cli, which the image does not install: it never starts the server",
        "components/backend/docker-entrypoint.sh:18, Dockerfile:21-43",
        "the entrypoint is replaced; depends_on (service_healthy) waits for PostgreSQL and Redis",
    ),
    ImageNote(
        "django-app",
        "the image's entrypoint creates the superuser admin/admin on first start",
        "components/backend/docker-entrypoint.sh:42-50",
        "the generated startup command creates DJANGO_SUPERUSER_EMAIL with the sidecar's django_admin_password, only if that user does not exist",
    ),
    ImageNote(
        "django-app",
        "no local app ships migrations, so `migrate` cannot create the custom user model's table",
        "components/backend/apps/*/ (no migrations/), omnivoip/settings/base.py:130",
        "the startup command runs `makemigrations` for the local apps before `migrate`",
    ),
    ImageNote(
        "django-app, celery-worker, celery-beat",
        "the cache backend is django_redis's, which requirements.txt does not install: every manage.py command, the server and Celery stop with InvalidCacheBackendError",
        "components/backend/omnivoip/settings/base.py:213-222, requirements.txt",
        "the generated settings overlay (backend/omnigen_settings.py) uses Django's own Redis cache backend on the same database and password; upstream fix: add django-redis to requirements.txt",
    ),
    ImageNote(
        "django-app, celery-worker, celery-beat",
        "djangorestframework-simplejwt 5.3.0 imports pkg_resources, which setuptools removed in 81.0, and the Dockerfile upgrades setuptools to the latest: Django cannot load its apps",
        "components/backend/requirements.txt (djangorestframework-simplejwt==5.3.0), Dockerfile:47",
        "the settings overlay gives simplejwt the one pkg_resources call it makes (get_distribution, from importlib.metadata) when pkg_resources is missing; upstream fix: pin setuptools<81 or upgrade simplejwt",
    ),
    ImageNote(
        "celery-worker, celery-beat",
        "Celery loads development settings (DEBUG on, any host) unless told otherwise",
        "components/backend/omnivoip/celery.py:9",
        f"DJANGO_SETTINGS_MODULE={BACKEND_SETTINGS_MODULE} (the {BACKEND_BASE_SETTINGS} settings through omnigen's overlay) on every backend service",
    ),
    ImageNote(
        "frontend",
        "nginx:alpine's master runs as root: with every capability dropped it cannot chown its temp folders or start its workers",
        "components/frontend/Dockerfile:26,41",
        "cap_add CHOWN, SETGID, SETUID (and nothing else) after cap_drop ALL, as policy rule OV102 admits",
    ),
    ImageNote(
        "dialer-api",
        "Field(regex=...) is refused by pydantic 2 at import: the API cannot start",
        "components/dialer/api/main.py:126, requirements.txt:3",
        "the entrypoint runs the image's command on a copy of main.py in /tmp with regex= renamed to pattern= (pydantic 2's name); upstream fix: the same rename",
    ),
    ImageNote(
        "celery-worker, celery-beat, dialer-worker",
        "celery 5.3.4 accepts any kombu 5.x, and pip now installs kombu 5.7 (2026-11-03), whose Redis transport refuses the redis-py 5.0.1 both requirements files pin: the workers cannot reach their broker",
        "components/backend/requirements.txt:14,17, components/dialer/worker/requirements.txt:1-2",
        "upstream fix needed: pin kombu==5.6.2 beside celery in both requirements files (a checkout with that line builds working images); nothing in a deployment can change an installed library",
        worked_around=False,
    ),
    ImageNote(
        "websockets",
        "/ws echoes what it receives and subscribes to nothing in Redis; the front-end speaks socket.io, which it does not serve",
        "components/websockets/main.py:52-62, components/frontend/src/services/websocket.js:1,23",
        "upstream fix needed: relay Redis pub/sub on /ws, or serve socket.io; nginx forwards wss://HOST/channels/ws to /ws",
        worked_around=False,
    ),
    ImageNote(
        "frontend",
        "VITE_API_URL/VITE_WS_URL are build-time values with localhost defaults and the Dockerfile has no ARG for them",
        "components/frontend/src/services/api.js:4, src/services/websocket.js:6",
        "upstream fix needed: build with VITE_API_URL=/api (e.g. a .env.production in the checkout)",
        worked_around=False,
    ),
)
