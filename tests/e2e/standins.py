"""Stand-in images, built locally under the exact names a generated compose file uses.

No registry is reachable, so every image of a Plan is replaced by a tiny
busybox image (tests/e2e/images/) whose default command plays the real
service: it listens on the service's ports, needs its dependencies at the
addresses the generated .env gives, and answers the commands our health checks
call (pg_isready, redis-cli, mc, asterisk -rx, python -c socket check, celery,
wget, nc). Roles follow the Plan's image keys, so a changed image name in a
profile is still served.
"""

from __future__ import annotations

import json
import shlex
import shutil
import struct
import subprocess
from pathlib import Path

from omnigen.plan.plan import Plan
from tests.e2e.engine import DockerEngine, EngineUnavailable

STANDIN_SOURCES = Path(__file__).resolve().parent / "images"
BASE_IMAGE = "omnigen-standin/base:e2e"
ELF_PROGRAM_INTERPRETER = 3
# The line of components/dialer/api/main.py (126) that pydantic 2 refuses; the generated entrypoint must rewrite it.
DIALER_API_MAIN = "class ContactCreate(BaseModel):\n    phone_number: str = Field(..., regex=r'^\\+?[0-9]{10,15}$')\n"


def role_commands(plan: Plan) -> dict[str, list[str]]:
    """Dockerfile lines (after FROM) per Plan image key: the default command each real image would have."""

    def cmd(*argv: str) -> str:
        return f"CMD {json.dumps(list(argv))}"

    return {
        "postgres": [cmd("postgres-standin")],
        # compose runs `sh -c "exec redis-server ..."`; the image default is the same server.
        # The real image's /data belongs to the redis user, which compose runs it as.
        "redis": ['RUN ["chown", "999:999", "/data"]', cmd("redis-server")],
        # Like the real image, the entrypoint is the server binary and compose passes `server /data ...`.
        "minio": ['ENTRYPOINT ["minio"]', cmd("server", "/data")],
        # The image's CMD (components/backend/Dockerfile:73); its ENTRYPOINT is replaced by every compose service.
        "backend": [cmd("gunicorn", "omnivoip.wsgi:application", "--bind", f"0.0.0.0:{plan.listen['django-app']}", "--workers", "4", "--timeout", "120")],
        "websockets": [cmd("websockets-standin")],
        # components/asterisk/Dockerfile:38 (USER asterisk: Alpine's 100:101, which owns the 0600 manager.conf/ari.conf).
        "asterisk": ["USER 100:101", cmd("asterisk-standin")],
        # components/dialer/api/Dockerfile: WORKDIR /app holding main.py (its line 126 still says Field(regex=...),
        # which the uvicorn stand-in refuses as pydantic 2 does), USER dialer (1000), CMD uvicorn main:app on 8001.
        "dialer_api": [
            "RUN " + json.dumps(["/bin/sh", "-c", f"mkdir -p /app && printf '%s' {shlex.quote(DIALER_API_MAIN)} >/app/main.py"]),
            "WORKDIR /app",
            "USER 1000:1000",
            cmd("uvicorn", "main:app", "--host", "0.0.0.0", "--port", str(plan.listen["dialer-api"]), "--workers", "2"),
        ],
        # components/dialer/worker/Dockerfile:58-61.
        "dialer_worker": [cmd("celery", "-A", "tasks", "worker", "--loglevel=info", "--concurrency=4", "--max-tasks-per-child=1000")],
        "frontend": [cmd("web-standin", str(plan.listen["frontend"]))],
        # No argument: serves the `listen` ports of the mounted nginx.conf, as nginx would.
        "nginx": [cmd("web-standin")],
    }


def _is_static_elf(path: Path) -> bool:
    """True when an x86-64/aarch64 ELF binary has no program interpreter (statically linked)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit ELF only
        return False
    program_headers, = struct.unpack_from("<Q", data, 0x20)
    entry_size, entry_count = struct.unpack_from("<HH", data, 0x36)
    for index in range(entry_count):
        segment_type, = struct.unpack_from("<I", data, program_headers + index * entry_size)
        if segment_type == ELF_PROGRAM_INTERPRETER:
            return False
    return True


def static_busybox() -> Path:
    for candidate in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if candidate and Path(candidate).is_file() and _is_static_elf(Path(candidate).resolve()):
            return Path(candidate).resolve()
    raise EngineUnavailable("no statically linked busybox; run .ci/install-docker.sh (Debian busybox-static)")


def _compile_portd(destination: Path) -> None:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise EngineUnavailable("no C compiler for the stand-ins' portd; run .ci/install-docker.sh (gcc, libc6-dev)")
    result = subprocess.run(
        [compiler, "-static", "-Os", "-s", "-Wall", "-o", str(destination), str(STANDIN_SOURCES / "portd.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise EngineUnavailable(f"compiling portd failed:\n{result.stderr}")


def build_base(engine: DockerEngine) -> None:
    context = engine.root / "standin-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(STANDIN_SOURCES, context, ignore=shutil.ignore_patterns("*.c"))
    shutil.copy2(static_busybox(), context / "busybox")
    _compile_portd(context / "portd")
    # The engine has no default bridge; RUN steps need no network anyway.
    engine.docker("build", "--network", "none", "--quiet", "-t", BASE_IMAGE, str(context), timeout=300)


def used_image_keys(plan: Plan, compose_text: str) -> tuple[str, ...]:
    """The Plan image keys whose image a generated compose file actually runs (optional components may be off)."""
    import yaml

    services = yaml.safe_load(compose_text)["services"].values()
    used = {str(service["image"]) for service in services}
    return tuple(key for key, service_image in plan.images.items() if service_image.image in used)


def build_standins(engine: DockerEngine, plan: Plan, keys: tuple[str, ...] | None = None) -> dict[str, str]:
    """Build the base and one stand-in per image of the Plan (or of `keys`); returns {key: image name}."""
    build_base(engine)
    commands = role_commands(plan)
    built: dict[str, str] = {}
    for key, service_image in plan.images.items():
        if keys is not None and key not in keys:
            continue
        if key not in commands:
            raise KeyError(f"no stand-in for the image key {key!r} ({service_image.image}); add its role to role_commands()")
        dockerfile = "\n".join([f"FROM {BASE_IMAGE}", f"LABEL org.omnigen.standin={json.dumps(key)}", *commands[key]])
        engine.docker("build", "--network", "none", "--quiet", "-t", service_image.image, "-", input_text=dockerfile + "\n", timeout=120)
        built[key] = service_image.image
    return built
