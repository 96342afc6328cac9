"""The application's own images, built from its source (tests/reference/omnivoip-app) with the real `docker compose build`.

The component Dockerfiles start `FROM python:3.11-slim`, `node:18-alpine` and
`nginx:alpine`, none of which can be pulled here. So:

- `python:3.11-slim` in the private engine is a Debian bookworm image made
  with mmdebstrap (rootfs.py) holding Debian's python3.11 with `python`,
  `pip`, setuptools and wheel on PATH as in the official image, apt (the
  Dockerfiles run `apt-get`), and the wheelhouse (wheelhouse.py) at
  /wheelhouse with PIP_NO_INDEX and PIP_FIND_LINKS set: every `pip install -r
  requirements.txt` in a Dockerfile resolves offline against the pinned
  wheels. Debian marks its python EXTERNALLY-MANAGED (PEP 668); the official
  image is not Debian's python and has no such marker, so the base removes it
  (what PEP 668 advises for container images).
- The backend, websockets, dialer API and dialer worker Dockerfiles then
  build UNMODIFIED with `docker compose build` on the generated compose
  file. Their `apt-get update && apt-get install` steps fetch from the
  Debian archive (deb.debian.org): the engine has no default bridge, so a
  compose override given only to `compose build` sets `build.network: host`
  for those services. Nothing else differs from what a user's `compose build`
  does.
- The frontend's first stage (`node:18-alpine`, `npm install`, `npm run
  build`) needs the npm registry inside a build and an Alpine node image:
  instead npm runs on the host in a temporary copy (`npm ci` with the lock
  file in frontend/package-lock.json, then `npm run build`, the stage's own
  two commands), and the image is the Dockerfile's second stage, derived from
  the real Dockerfile by dropping the first stage and copying `dist/` from the
  build context instead of `--from=build` (`frontend_stage_two`). It is built
  on the `nginx:alpine` stand-in (tests/e2e/realapp/services.py), through the
  same override (`build.dockerfile`).

Built images are saved (`docker save`) into the cache folder under a hash of
everything they are made from (base image tag, build context files, override,
this module's recipe); a later run `docker load`s them instead of building.
The generated compose file says `pull_policy: build`, so the test brings the
stack up with `up --no-build` after this module has built or loaded every
image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.engine import DockerEngine, EngineUnavailable, compose_binary
from tests.e2e.realapp.rootfs import (
    BUILD_LOG,
    DOCKER_IO_TIMEOUT_SECONDS,
    BuildRecord,
    ImageConfig,
    ImageFile,
    cache_folder,
    debian_image,
    save_to_cache,
)
from tests.e2e.realapp.wheelhouse import wheelhouse

# Bump when the way an application image is made changes in a way its inputs do not show.
RECIPE_VERSION = "1"
PYTHON_BASE_REFERENCE = "python:3.11-slim"
NGINX_BASE_REFERENCE = "nginx:alpine"
FRONTEND_LOCK = Path(__file__).resolve().parent / "frontend" / "package-lock.json"
FRONTEND_DOCKERFILE = "Dockerfile.omnigen-e2e"
# What python:3.11-slim carries besides Python: apt (the Dockerfiles call apt-get), useradd
# (passwd), CA certificates, /etc/services and /etc/protocols (netbase), time zones.
PYTHON_BASE_PACKAGES = ("apt", "passwd", "ca-certificates", "netbase", "tzdata", "python3.11", "python3", "python-is-python3")
BUILD_TIMEOUT_SECONDS = 3600
NPM_TIMEOUT_SECONDS = 1200


def python_base(engine: DockerEngine) -> str:
    """`python:3.11-slim` in the engine: Debian's python3.11, pip from the wheelhouse, the wheelhouse offline."""
    wheels = wheelhouse()
    files = {f"/wheelhouse/{path.name}": ImageFile(path.read_bytes()) for path in sorted(wheels.iterdir())}
    (pip_wheel,) = (path.name for path in wheels.glob("pip-*.whl"))
    customize = (
        'rm -f "$1/usr/lib/python3.11/EXTERNALLY-MANAGED"',
        # pip, setuptools and wheel in /usr/local like the official image, installed by pip's own wheel.
        f'chroot "$1" python3 /wheelhouse/{pip_wheel}/pip install --quiet --no-index --find-links /wheelhouse pip setuptools wheel',
        'chroot "$1" pip --version',
    )
    config = ImageConfig(
        env={"LANG": "C.UTF-8", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheelhouse"},
        cmd=["python3"],
    )
    return debian_image(
        engine, "python-3.11-slim", PYTHON_BASE_PACKAGES, customize=customize, config=config, files=files, tags=[PYTHON_BASE_REFERENCE]
    )


def frontend_stage_two(dockerfile: str) -> str:
    """The frontend Dockerfile's production stage, with the build stage's output taken from the context's dist/."""
    lines = dockerfile.splitlines()
    stages = [index for index, line in enumerate(lines) if line.upper().startswith("FROM ")]
    if len(stages) != 2 or lines[stages[1]].split()[1] != NGINX_BASE_REFERENCE:
        raise AssertionError(f"the frontend Dockerfile is no longer a build stage then FROM {NGINX_BASE_REFERENCE}; revisit appimages.py")
    stage = lines[stages[1] :]
    copy_from_build = [index for index, line in enumerate(stage) if line.startswith("COPY --from=build /app/dist ")]
    if len(copy_from_build) != 1:
        raise AssertionError("the frontend's second stage no longer copies /app/dist from the build stage; revisit appimages.py")
    index = copy_from_build[0]
    stage[index] = stage[index].replace("COPY --from=build /app/dist ", "COPY dist ", 1)
    header = "# The second stage of components/frontend/Dockerfile; dist/ was built by npm on the host (tests/e2e/realapp/appimages.py)."
    return "\n".join([header, *stage]) + "\n"


@dataclass(frozen=True)
class AppImage:
    """One application image the generated compose file builds."""

    reference: str  # the compose file's `image:`
    service: str  # one service that builds it (compose builds a shared image once)
    context: Path
    network_host: bool  # its Dockerfile runs apt-get
    frontend: bool


def application_images(compose_file: Path, skip: Iterable[str]) -> list[AppImage]:
    """Every image the compose file builds, one service each, except the images in `skip` (stand-ins)."""
    document: dict[str, Any] = yaml.safe_load(compose_file.read_text())
    found: dict[str, AppImage] = {}
    for name, service in sorted(document["services"].items()):
        build = service.get("build")
        reference = str(service["image"])
        if build is None or reference in skip or reference in found:
            continue
        context = (compose_file.parent / build["context"]).resolve()
        frontend = context.name == "frontend"
        found[reference] = AppImage(reference, name, context, network_host=not frontend, frontend=frontend)
    return list(found.values())


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _image_key(image: AppImage, base_tag: str, override: Mapping[str, Any]) -> str:
    recipe = {
        "recipe": RECIPE_VERSION,
        "reference": image.reference,
        "base": base_tag,
        "context": _tree_hash(image.context),
        "override": override,
        "lock": hashlib.sha256(FRONTEND_LOCK.read_bytes()).hexdigest() if image.frontend else None,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _slug(image: AppImage) -> str:
    return image.reference.replace("/", "_").replace(":", "-")


def _cached(image: AppImage, key: str) -> Path:
    return cache_folder() / f"app-{_slug(image)}-{key}.tar"


def _content_tag(image: AppImage, key: str) -> str:
    return f"omnigen-e2e/app-{_slug(image).lower()}:{key}"


def _has_image(engine: DockerEngine, reference: str) -> bool:
    return engine.docker("image", "inspect", reference, check=False, timeout=60).returncode == 0


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise EngineUnavailable("npm is not installed; the frontend is built with npm on the host (Debian nodejs, npm)")
    return npm


def build_frontend_dist(context: Path) -> None:
    """`npm ci` + `npm run build` (the build stage's commands) in a temporary copy; dist/ lands in `context`.

    The result is kept in the cache folder under the hash of the sources and the lock file.
    """
    key = hashlib.sha256((_tree_hash(context) + hashlib.sha256(FRONTEND_LOCK.read_bytes()).hexdigest()).encode()).hexdigest()[:16]
    cached = cache_folder() / f"frontend-dist-{key}"
    if not cached.is_dir():
        _npm_build(context, cached)
    shutil.rmtree(context / "dist", ignore_errors=True)
    shutil.copytree(cached, context / "dist")


def _npm_build(context: Path, destination: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="omnigen-frontend-") as folder:
        work = Path(folder) / "frontend"
        shutil.copytree(context, work, ignore=shutil.ignore_patterns("node_modules", "dist"))
        shutil.copyfile(FRONTEND_LOCK, work / "package-lock.json")
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
        for command in (["ci", "--no-audit", "--no-fund", "--loglevel=error"], ["run", "build"]):
            result = subprocess.run(
                [_npm(), *command], cwd=work, capture_output=True, text=True, env=env, check=False, timeout=NPM_TIMEOUT_SECONDS
            )
            if result.returncode != 0:
                raise RuntimeError(f"npm {' '.join(command)} failed for the frontend:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(work / "dist", staging)
        staging.rename(destination)


def build_application_images(engine: DockerEngine, folder: Path, skip: Iterable[str]) -> list[str]:
    """Build (or load from the cache) every application image the deployment in `folder` builds; returns their references."""
    base_tag = python_base(engine)
    images = application_images(folder / "docker-compose.yml", skip)
    override: dict[str, Any] = {"services": {}}
    for image in images:
        if image.frontend:
            override["services"][image.service] = {"build": {"dockerfile": FRONTEND_DOCKERFILE}}
        elif image.network_host:
            override["services"][image.service] = {"build": {"network": "host"}}
    keys = {image.reference: _image_key(image, base_tag, override) for image in images}
    missing: list[AppImage] = []
    for image in images:
        started = time.monotonic()
        cached = _cached(image, keys[image.reference])
        if _has_image(engine, _content_tag(image, keys[image.reference])):
            # Built or loaded earlier in this engine's life (the other profile): only the reference moves.
            engine.docker("tag", _content_tag(image, keys[image.reference]), image.reference)
            _record(engine, image, "engine", started)
        elif cached.is_file():
            engine.docker("load", "--quiet", "--input", str(cached), timeout=DOCKER_IO_TIMEOUT_SECONDS)
            engine.docker("tag", image.reference, _content_tag(image, keys[image.reference]))
            _record(engine, image, "cache", started)
        else:
            missing.append(image)
    if not missing:
        return [image.reference for image in images]
    started = time.monotonic()
    for image in missing:
        if image.frontend:
            build_frontend_dist(image.context)
            (image.context / FRONTEND_DOCKERFILE).write_text(frontend_stage_two((image.context / "Dockerfile").read_text()))
    override_file = folder / "compose.e2e-build.yml"
    override_file.write_text(yaml.safe_dump(override, sort_keys=True))
    try:
        command = [
            str(compose_binary()),
            "--project-directory",
            str(folder),
            "-f",
            str(folder / "docker-compose.yml"),
            "-f",
            str(override_file),
        ]
        command += ["--env-file", str(folder / ".env"), "build", *(image.service for image in missing)]
        result = subprocess.run(command, capture_output=True, text=True, env=engine.env(), check=False, timeout=BUILD_TIMEOUT_SECONDS)
        if result.returncode != 0:
            raise RuntimeError(f"compose build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    finally:
        override_file.unlink(missing_ok=True)
    for image in missing:
        save_to_cache(engine, image.reference, _cached(image, keys[image.reference]))
        engine.docker("tag", image.reference, _content_tag(image, keys[image.reference]))
        _record(engine, image, "built", started)
    return [image.reference for image in images]


def _record(engine: DockerEngine, image: AppImage, source: str, started: float) -> None:
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", image.reference).stdout.strip() or 0)
    BUILD_LOG.append(BuildRecord(image.reference, image.reference, source, time.monotonic() - started, size))
