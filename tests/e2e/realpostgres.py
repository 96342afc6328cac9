"""A PostgreSQL image built offline from Debian's own PostgreSQL 15 (the host's postgresql-15 package).

No registry is reachable, and a migration test needs the real server: a data
directory that keeps the password it was initialised with, and TCP logins that
check it. The image is the stand-in base (busybox) plus Debian's postgres,
initdb, pg_ctl, psql, pg_isready, pg_dump and pg_restore, the shared libraries
`ldd` says they load, PostgreSQL's share folder and the time zone database.
Its entrypoint (postgres/docker-entrypoint.sh) applies POSTGRES_* only to an
empty data directory, as the official image's does. `.ci/install-docker.sh`
installs postgresql-15.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.e2e.engine import DockerEngine, EngineUnavailable
from tests.e2e.standins import BASE_IMAGE

SOURCES = Path(__file__).resolve().parent / "postgres"
VERSION = "15"
BIN = Path(f"/usr/lib/postgresql/{VERSION}/bin")
LIB = Path(f"/usr/lib/postgresql/{VERSION}/lib")
SHARE = Path(f"/usr/share/postgresql/{VERSION}")
ZONEINFO = Path("/usr/share/zoneinfo")
PROGRAMS = ("postgres", "initdb", "pg_ctl", "psql", "pg_isready", "pg_dump", "pg_restore")
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def _shared_libraries(binaries: list[Path]) -> set[str]:
    """Every library path `ldd` names for the binaries, as the loader will look it up."""
    found: set[str] = set()
    for binary in binaries:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False, timeout=30)
        if result.returncode != 0:
            raise EngineUnavailable(f"ldd {binary} failed: {result.stderr.strip()}")
        found.update(match.group(1) for line in result.stdout.splitlines() if (match := _LDD_PATH.search(line)))
    return found


def _copy(source: Path, rootfs: Path, path: str | None = None) -> None:
    destination = rootfs / (path or str(source)).lstrip("/")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source.resolve(), destination)


def _compile_runas(destination: Path) -> None:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise EngineUnavailable("no C compiler for runas; run .ci/install-docker.sh (gcc, libc6-dev)")
    result = subprocess.run(
        [compiler, "-static", "-Os", "-s", "-Wall", "-o", str(destination), str(SOURCES / "runas.c")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise EngineUnavailable(f"compiling runas failed:\n{result.stderr}")


def build_postgres(engine: DockerEngine, image: str) -> str:
    """Build Debian's PostgreSQL under `image` (the name a compose file runs); the stand-in base must exist."""
    if not (BIN / "postgres").is_file():
        raise EngineUnavailable(f"Debian's PostgreSQL {VERSION} is not installed; run .ci/install-docker.sh (postgresql-{VERSION})")
    context = engine.root / "postgres-context"
    shutil.rmtree(context, ignore_errors=True)
    rootfs = context / "rootfs"
    modules = [path for path in sorted(LIB.glob("*.so")) if not path.name.startswith("llvmjit")]  # no JIT: no LLVM
    programs = [BIN / name for name in PROGRAMS]
    for path in programs + modules:
        _copy(path, rootfs)
    for library in _shared_libraries(programs + modules):
        _copy(Path(library), rootfs)
    _copy(SHARE, rootfs)
    _copy(ZONEINFO, rootfs)
    _compile_runas(context / "runas")
    shutil.copy2(SOURCES / "docker-entrypoint.sh", context / "docker-entrypoint.sh")
    dockerfile = "\n".join(
        [
            f"FROM {BASE_IMAGE}",
            'LABEL org.omnigen.standin="postgres (Debian PostgreSQL)"',
            "COPY rootfs/ /",
            "COPY runas docker-entrypoint.sh /usr/local/bin/",
            # The official image's socket folder, writable by the postgres user (uid 70 in the alpine image).
            'RUN ["/bin/sh", "-c", "mkdir -p /var/run/postgresql && chown 70:70 /var/run/postgresql && chmod 3777 /var/run/postgresql"]',
            f"ENV PATH=/usr/lib/postgresql/{VERSION}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "ENV LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            f"CMD {json.dumps(['postgres'])}",
            "",
        ]
    )
    (context / "Dockerfile").write_text(dockerfile)
    engine.docker("build", "--network", "none", "--quiet", "-t", image, str(context), timeout=600)
    return image
