"""Every image of a generated deployment that is not the OmniVoIP Python/JS application.

Built from Debian bookworm packages with `rootfs.debian_image` and tagged with
the exact `image:` reference the rendered compose file gives each service, so
the generated docker-compose.yml runs unmodified.

- Real daemons, with the contract of the image the compose names:
  `postgresql` (postgres:*-alpine: Debian's PostgreSQL 15 with the official
  image's own entrypoint), `redis` (redis:*-alpine: Debian's Redis 7.0 with the
  official entrypoint), `nginx` (nginxinc/nginx-unprivileged: Debian's nginx
  as uid 101), `kamailio` and `rtpengine` (components/kamailio and
  components/rtpengine: Debian's kamailio and rtpengine-daemon, same CMD, user
  and config paths; the component Dockerfiles use Alpine's apk and a `git
  clone` of sipwise/rtpengine, and neither Alpine's repositories nor GitHub
  can be reached here).
- Stand-ins where Debian bookworm has no package: `asterisk`
  (components/asterisk; standin_asterisk.py) and `minio` (minio/minio;
  standin_minio.py). Neither is kinder than the real server: see their modules.
- Not a service: `nginx_alpine_base` is the `nginx:alpine` image the frontend's
  Dockerfile builds FROM (master as root, workers as `nginx`).

Users keep the official images' uids (postgres 70, redis 999, nginx 101) so
named volumes initialised from one image keep working with the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from omnigen.catalog.application import ASTERISK_GID, ASTERISK_UID
from omnigen.catalog.services import NGINX_GID, NGINX_UID
from tests.e2e.engine import DockerEngine
from tests.e2e.realapp.rootfs import ImageConfig, ImageFile, debian_image

HERE = Path(__file__).resolve().parent
OFFICIAL = HERE / "official"
NGINX_ALPINE = "nginx:alpine"
POSTGRES_MAJOR = "15"
# The services infrastructure_images() builds, by compose service name.
INFRASTRUCTURE_SERVICES = ("postgresql", "redis", "nginx", "minio", "asterisk", "kamailio", "rtpengine")


def system_account(name: str, uid: int, gid: int, home: str, shell: str = "/usr/sbin/nologin") -> str:
    """A hook (for `before_packages`) that adds a system user and group with fixed ids unless they exist.

    A package's later `adduser --system NAME` finds the account and keeps its ids.
    """
    return (
        f"grep -q '^{name}:' \"$1/etc/group\" || echo '{name}:x:{gid}:' >> \"$1/etc/group\"; "
        f"grep -q '^{name}:' \"$1/etc/gshadow\" || echo '{name}:!::' >> \"$1/etc/gshadow\"; "
        f"grep -q '^{name}:' \"$1/etc/passwd\" || echo '{name}:x:{uid}:{gid}::{home}:{shell}' >> \"$1/etc/passwd\"; "
        f"grep -q '^{name}:' \"$1/etc/shadow\" || echo '{name}:!:19000::::::' >> \"$1/etc/shadow\""
    )


def _script(path: Path) -> ImageFile:
    return ImageFile(path.read_bytes(), 0o755)


def postgres_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """Debian's PostgreSQL 15 with the official postgres:15-alpine contract.

    The official entrypoint (official/postgres-docker-entrypoint.sh) initialises
    an empty PGDATA from POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB (and the
    *_FILE forms), `listen_addresses = '*'`, scram-sha-256 for every network
    login. uid/gid 70 as in the Alpine image. Differences, none kinder: LANG is
    C.UTF-8 (Debian has no en_US locale without the locales package); no JIT
    (libLLVM is removed to keep the image small); the official STOPSIGNAL
    SIGINT cannot be set by `docker import`, so a stop is SIGTERM (smart
    shutdown, still clean).
    """
    bin_dir = f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin"
    return debian_image(
        engine,
        "postgres",
        [f"postgresql-{POSTGRES_MAJOR}", "bash", "findutils"],
        before_packages=[
            system_account("postgres", 70, 70, "/var/lib/postgresql", "/bin/sh"),
            # Debian creates a "main" cluster on install; the entrypoint makes its own in PGDATA.
            'mkdir -p "$1/etc/postgresql-common/createcluster.d"'
            ' && echo "create_main_cluster = false" > "$1/etc/postgresql-common/createcluster.d/omnigen.conf"',
        ],
        files={
            "/usr/local/bin/docker-entrypoint.sh": _script(OFFICIAL / "postgres-docker-entrypoint.sh"),
            "/usr/local/bin/docker-ensure-initdb.sh": _script(OFFICIAL / "postgres-docker-ensure-initdb.sh"),
        },
        customize=[
            # As the official Dockerfile does to its sample: listen on every address.
            f'sed -ri "s!^#?(listen_addresses)\\s*=\\s*\\S+.*!\\1 = \'*\'!" "$1/usr/share/postgresql/{POSTGRES_MAJOR}/postgresql.conf.sample"',
            f'grep -qF "listen_addresses = \'*\'" "$1/usr/share/postgresql/{POSTGRES_MAJOR}/postgresql.conf.sample"',
            'rm -f "$1"/usr/lib/x86_64-linux-gnu/libLLVM-*.so* "$1"/usr/lib/postgresql/*/lib/llvmjit*',
            'rm -rf "$1"/usr/lib/postgresql/*/lib/bitcode',
            'mkdir -p "$1/docker-entrypoint-initdb.d"',
            'install -d -o 70 -g 70 -m 3777 "$1/run/postgresql"',
            'install -d -o 70 -g 70 -m 1777 "$1/var/lib/postgresql/data"',
        ],
        config=ImageConfig(
            env={
                # The real binaries first: Debian's /usr/bin/pg_isready is a Perl wrapper that needs a cluster config.
                "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8",
                "PG_MAJOR": POSTGRES_MAJOR,
                "PGDATA": "/var/lib/postgresql/data",
            },
            entrypoint=["docker-entrypoint.sh"],
            cmd=["postgres"],
            expose=["5432"],
            volumes=["/var/lib/postgresql/data"],
        ),
        tags=tags,
    )


def redis_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """Debian's Redis 7.0 with the official redis:7-alpine contract (entrypoint, uid 999, /data).

    Debian builds Redis with protected mode on (the official image turns it
    off); with `--requirepass`, as the generated compose runs it, that makes
    no difference, and without a password Debian's is the stricter one.
    """
    return debian_image(
        engine,
        "redis",
        ["redis-server", "redis-tools", "findutils"],
        before_packages=[system_account("redis", 999, 1000, "/home/redis", "/sbin/nologin")],
        files={"/usr/local/bin/docker-entrypoint.sh": _script(OFFICIAL / "redis-docker-entrypoint.sh")},
        customize=['install -d -o 999 -g 1000 -m 755 "$1/data"'],
        config=ImageConfig(
            entrypoint=["docker-entrypoint.sh"],
            cmd=["redis-server"],
            workdir="/data",
            expose=["6379"],
            volumes=["/data"],
        ),
        tags=tags,
    )


def _nginx_image(engine: DockerEngine, name: str, config: ImageConfig, conf: str, default_server: str, tags: tuple[str, ...]) -> str:
    return debian_image(
        engine,
        name,
        ["nginx", "busybox"],
        before_packages=[system_account("nginx", NGINX_UID, NGINX_GID, "/var/cache/nginx")],
        files={
            "/docker-entrypoint.sh": _script(OFFICIAL / "nginx-docker-entrypoint.sh"),
            "/etc/nginx/nginx.conf": ImageFile(conf.encode()),
            "/etc/nginx/conf.d/default.conf": ImageFile(default_server.encode()),
            "/usr/share/nginx/html/index.html": ImageFile(
                b"<!DOCTYPE html>\n<title>Welcome to nginx!</title>\n<h1>Welcome to nginx!</h1>\n"
            ),
        },
        customize=[
            # Alpine's wget (busybox) answers the health checks; Debian's busybox has the same applet.
            'ln -sf /bin/busybox "$1/usr/local/bin/wget"',
            # As the official images: logs to the container's stdout/stderr.
            'mkdir -p "$1/var/log/nginx" && ln -sf /dev/stdout "$1/var/log/nginx/access.log" && ln -sf /dev/stderr "$1/var/log/nginx/error.log"',
            # The official images' home of nginx. Debian's compiled-in temp folder /var/lib/nginx stays
            # root's, as in the package: nginx:alpine's master (root without CAP_DAC_OVERRIDE) creates
            # its subfolders and hands them to the workers; the unprivileged config puts them in /tmp.
            f'install -d -o {NGINX_UID} -g {NGINX_GID} "$1/var/cache/nginx"',
            'mkdir -p "$1/docker-entrypoint.d"',
            'rm -f "$1/etc/nginx/sites-enabled/default"',
        ],
        config=config,
        tags=tags,
    )


# The official images' default server (nginx:alpine conf.d/default.conf, listen 80).
NGINX_DEFAULT_SERVER = """\
server {
    listen       80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""

# nginx:alpine's nginx.conf: the master as root, workers as `nginx`, conf.d/*.conf included.
NGINX_ALPINE_CONF = """\
user  nginx;
worker_processes  auto;
error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;
events {
    worker_connections  1024;
}
http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';
    access_log  /var/log/nginx/access.log  main;
    sendfile        on;
    keepalive_timeout  65;
    include /etc/nginx/conf.d/*.conf;
}
"""

# nginxinc/nginx-unprivileged's nginx.conf: no `user`, pid and temp files in /tmp, port 8080.
NGINX_UNPRIVILEGED_CONF = """\
worker_processes  auto;
error_log  /var/log/nginx/error.log notice;
pid        /tmp/nginx.pid;
events {
    worker_connections  1024;
}
http {
    client_body_temp_path /tmp/client_temp;
    proxy_temp_path       /tmp/proxy_temp_path;
    fastcgi_temp_path     /tmp/fastcgi_temp;
    uwsgi_temp_path       /tmp/uwsgi_temp;
    scgi_temp_path        /tmp/scgi_temp;
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    access_log  /var/log/nginx/access.log;
    sendfile        on;
    keepalive_timeout  65;
    include /etc/nginx/conf.d/*.conf;
}
"""


def nginx_alpine_base(engine: DockerEngine, tags: tuple[str, ...] = (NGINX_ALPINE,)) -> str:
    """Debian's nginx 1.22 with nginx:alpine's contract: the image the frontend's Dockerfile builds FROM.

    Master as root (no USER), workers as `nginx` (uid 101), /etc/nginx/conf.d/*.conf
    included, /usr/share/nginx/html, `nginx -g 'daemon off;'`, the official entrypoint.
    """
    config = ImageConfig(entrypoint=["/docker-entrypoint.sh"], cmd=["nginx", "-g", "daemon off;"], expose=["80"])
    return _nginx_image(engine, "nginx-alpine", config, NGINX_ALPINE_CONF, NGINX_DEFAULT_SERVER, tags)


def nginx_unprivileged_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """Debian's nginx 1.22 with nginxinc/nginx-unprivileged's contract: uid 101 from the start, port 8080, pid in /tmp."""
    config = ImageConfig(user=str(NGINX_UID), entrypoint=["/docker-entrypoint.sh"], cmd=["nginx", "-g", "daemon off;"], expose=["8080"])
    default_server = NGINX_DEFAULT_SERVER.replace("listen       80;", "listen       8080;")
    return _nginx_image(engine, "nginx-unprivileged", config, NGINX_UNPRIVILEGED_CONF, default_server, tags)


def kamailio_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """Debian's Kamailio 5.6 as components/kamailio runs it (root, `kamailio -DD -E -f /etc/kamailio/kamailio.cfg`).

    The component's Dockerfile installs Alpine's kamailio, kamailio-postgres and
    kamailio-tls with apk, which cannot reach Alpine's repositories here;
    Debian's packages carry the same modules, plus the websocket and
    auth_ephemeral modules the generated kamailio.cfg loads. `kamcmd` (the
    health check) is in the kamailio package.
    """
    return debian_image(
        engine,
        "kamailio",
        [
            "kamailio",
            "kamailio-websocket-modules",
            "kamailio-tls-modules",
            "kamailio-autheph-modules",
            "kamailio-postgres-modules",
            "openssl",
        ],
        customize=['mkdir -p "$1/etc/kamailio" "$1/var/log/kamailio" "$1/run/kamailio"'],
        config=ImageConfig(
            cmd=["kamailio", "-DD", "-E", "-f", "/etc/kamailio/kamailio.cfg"],
            expose=["5060/tcp", "5060/udp", "5061/tcp", "8080/tcp", "8443/tcp"],
        ),
        tags=tags,
    )


def rtpengine_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """Debian's rtpengine 10.5 as components/rtpengine runs it (root, `rtpengine --config-file=... --foreground`).

    The component's Dockerfile builds rtpengine from a `git clone` of GitHub,
    which cannot be reached here; Debian's rtpengine-daemon is the same daemon
    (userspace forwarding; the kernel module is not used). bash is there for
    the generated health check's /dev/tcp probe.
    """
    return debian_image(
        engine,
        "rtpengine",
        ["rtpengine-daemon", "bash"],
        customize=['mkdir -p "$1/etc/rtpengine" "$1/var/log/rtpengine" "$1/run/rtpengine"'],
        config=ImageConfig(cmd=["rtpengine", "--config-file=/etc/rtpengine/rtpengine.conf", "--foreground"], expose=["22222/udp"]),
        tags=tags,
    )


def asterisk_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """The Asterisk stand-in (standin_asterisk.py) under components/asterisk's contract.

    Asterisk is not in Debian bookworm (removed from Debian in 2018) and the
    component's Alpine packages cannot be fetched. Same CMD (`asterisk -f -vvv
    -c`), user `asterisk` with omnigen's ASTERISK_UID/ASTERISK_GID (the ids
    Alpine 3.18's package gives it, to which a root build hands manager.conf
    and ari.conf), ports 5060/5038/8088 and /etc/asterisk paths.
    """
    return debian_image(
        engine,
        "asterisk-standin",
        ["python3-minimal", "libpython3.11-stdlib"],
        before_packages=[system_account("asterisk", ASTERISK_UID, ASTERISK_GID, "/var/lib/asterisk")],
        files={"/usr/sbin/asterisk": _script(HERE / "standin_asterisk.py")},
        customize=[
            f'install -d -o {ASTERISK_UID} -g {ASTERISK_GID} "$1/etc/asterisk" "$1/var/lib/asterisk/sounds" "$1/var/spool/asterisk"'
            ' "$1/var/log/asterisk" "$1/run/asterisk"',
        ],
        config=ImageConfig(
            user="asterisk",
            cmd=["asterisk", "-f", "-vvv", "-c"],
            expose=["5060/udp", "5060/tcp", "5038/tcp", "8088/tcp"],
            labels={"org.omnigen.standin": "asterisk"},
        ),
        tags=tags,
    )


def minio_image(engine: DockerEngine, tags: tuple[str, ...] = ()) -> str:
    """The MinIO stand-in (standin_minio.py) under minio/minio's contract.

    MinIO is not packaged in Debian. Same entrypoint convention (arguments
    after the image name are `minio`'s: `server /data --address :9000`),
    root user, /data volume, `mc ready local` for the health check.
    """
    return debian_image(
        engine,
        "minio-standin",
        ["python3-minimal", "libpython3.11-stdlib"],
        files={
            "/usr/bin/minio": _script(HERE / "standin_minio.py"),
            "/usr/bin/docker-entrypoint.sh": ImageFile(MINIO_ENTRYPOINT.encode(), 0o755),
            "/usr/bin/mc": ImageFile(MINIO_MC.encode(), 0o755),
        },
        customize=['mkdir -p "$1/data"'],
        config=ImageConfig(
            entrypoint=["/usr/bin/docker-entrypoint.sh"],
            cmd=["minio"],
            expose=["9000"],
            volumes=["/data"],
            labels={"org.omnigen.standin": "minio"},
        ),
        tags=tags,
    )


# minio/minio's docker-entrypoint.sh: arguments that are not a command run as `minio ARGS`.
MINIO_ENTRYPOINT = """\
#!/bin/sh
# As minio/minio's entrypoint: `server /data ...` runs as `minio server /data ...`.
if [ "${1}" != "minio" ]; then
    if [ -n "${1}" ]; then
        set -- minio "$@"
    fi
fi
exec "$@"
"""

# `mc ready local`: the health check of the generated compose. Answers once (no waiting loop:
# the health check has its own timeout) from the server's own readiness endpoint.
MINIO_MC = """\
#!/usr/bin/python3
import sys
import urllib.request

if sys.argv[1:] != ["ready", "local"]:
    sys.exit(f"mc (stand-in): only `mc ready local` is supported, got {sys.argv[1:]}")
try:
    with urllib.request.urlopen("http://127.0.0.1:9000/minio/health/ready", timeout=3) as answer:
        ok = answer.status == 200
except OSError as error:
    sys.exit(f"mc: <ERROR> Unable to reach local: {error}")
print("The cluster is ready" if ok else "The cluster is not ready")
sys.exit(0 if ok else 1)
"""

_BUILDERS = {
    "postgresql": postgres_image,
    "redis": redis_image,
    "nginx": nginx_unprivileged_image,
    "minio": minio_image,
    "asterisk": asterisk_image,
    "kamailio": kamailio_image,
    "rtpengine": rtpengine_image,
}


def infrastructure_images(engine: DockerEngine, rendered_compose: str | Path | Mapping[str, Any]) -> dict[str, str]:
    """Build (or load from cache) every non-application image a rendered compose file runs.

    `rendered_compose` is the docker-compose.yml text, its path, or the parsed
    mapping. Covers the services postgresql, redis, nginx, minio, asterisk, and
    with components.webrtc kamailio and rtpengine (INFRASTRUCTURE_SERVICES);
    every other service (django-app, celery-*, websockets, dialer-*, frontend)
    is the application's and left alone. Also builds `nginx:alpine`, the base
    stage of the frontend's Dockerfile. Each image is tagged with the `image:`
    its service names. Returns {service: image reference}.
    """
    if isinstance(rendered_compose, Path):
        rendered_compose = rendered_compose.read_text()
    compose = yaml.safe_load(rendered_compose) if isinstance(rendered_compose, str) else rendered_compose
    built: dict[str, str] = {}
    for service, definition in compose["services"].items():
        builder = _BUILDERS.get(service)
        if builder is None:
            continue
        reference = str(definition["image"])
        builder(engine, (reference,))
        built[service] = reference
    nginx_alpine_base(engine)
    return built
