"""Debian bookworm images made offline-from-registries: mmdebstrap, then `docker import`.

No container registry is reachable here, but the Debian archive is. So every
image the real-application tier needs starts as a root filesystem that
mmdebstrap assembles from Debian packages, which `docker import` turns into a
one-layer image with the config (ENV, USER, WORKDIR, CMD, ENTRYPOINT, EXPOSE)
given as `--change` instructions.

Images are named by a content hash of every input (packages, files, customize
commands, config, suite, this module's recipe version): an engine that already
has the tag skips the work, and the exported image (`docker save`) is kept in
`${OMNIGEN_E2E_CACHE:-~/.cache/omnigen-e2e}` under that hash so a later run (a
new private engine) only `docker load`s it. The Debian archive itself moves
(point releases, security updates); the hash does not follow it, so a cached
image keeps the packages of the day it was built until the cache is cleared.

Images are kept small on purpose: they are saved to and loaded from the cache
whole, and an engine without overlay (vfs) copies the whole filesystem for
every container and layer. The base is
mmdebstrap's `essential` variant (no apt, no Priority: required set) plus the
packages asked for, without Recommends, and dpkg skips docs, man pages and
locales.

`.ci/install-mmdebstrap.sh` installs mmdebstrap.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.engine import DockerEngine, EngineUnavailable

# Bump when the way an image is made changes in a way its inputs do not show.
RECIPE_VERSION = "2"
SUITE = "bookworm"
# The same archive and suites as the machine's own apt sources (deb.debian.org).
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# Documentation, man pages and translations are never read in a test container.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)
IMAGE_REPOSITORY = "omnigen-e2e"
# `docker import` sets no environment at all; this is the PATH Debian's own images (and the
# official ones built on them) carry, used unless the config names another.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MMDEBSTRAP_TIMEOUT_SECONDS = 1200
# docker save/load/import of one image: the backend image is 1.7 GB.
DOCKER_IO_TIMEOUT_SECONDS = 900


def cache_folder() -> Path:
    """Where exported images are kept between runs (`OMNIGEN_E2E_CACHE`, default ~/.cache/omnigen-e2e)."""
    configured = os.environ.get("OMNIGEN_E2E_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "omnigen-e2e"


@dataclass(frozen=True)
class ImageConfig:
    """The image config `docker import --change` sets; None/empty leaves Docker's default."""

    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    expose: Sequence[str] = ()
    volumes: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def changes(self) -> list[str]:
        """Dockerfile-style instructions, in a stable order (they are part of the content hash)."""
        env = {"PATH": DEFAULT_PATH, **self.env}
        lines = [f"ENV {key}={json.dumps(value)}" for key, value in sorted(env.items())]
        lines += [f"LABEL {key}={json.dumps(value)}" for key, value in sorted(self.labels.items())]
        if self.user is not None:
            lines.append(f"USER {self.user}")
        if self.workdir is not None:
            lines.append(f"WORKDIR {self.workdir}")
        if self.entrypoint is not None:
            lines.append(f"ENTRYPOINT {json.dumps(list(self.entrypoint))}")
        if self.cmd is not None:
            lines.append(f"CMD {json.dumps(list(self.cmd))}")
        lines += [f"EXPOSE {port}" for port in self.expose]
        lines += [f"VOLUME {json.dumps([path])}" for path in self.volumes]
        return lines


@dataclass(frozen=True)
class ImageFile:
    """A file placed into the root filesystem before the customize commands run."""

    content: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class BuildRecord:
    """How one `debian_image` call was satisfied, for the tier's measurements."""

    name: str
    tag: str
    source: str  # "engine" (already there), "cache" (docker load) or "built" (mmdebstrap + import)
    seconds: float
    size_bytes: int


BUILD_LOG: list[BuildRecord] = []


def content_hash(
    name: str,
    packages: Sequence[str],
    customize: Sequence[str],
    config: ImageConfig,
    files: Mapping[str, ImageFile],
    before_packages: Sequence[str] = (),
) -> str:
    """A short hex digest of every input that decides the image's content."""
    recipe = {
        "recipe": RECIPE_VERSION,
        "name": name,
        "suite": SUITE,
        "mirrors": list(MIRRORS),
        "dpkg": list(DPKG_OPTIONS),
        "packages": sorted(set(packages)),
        "customize": list(customize),
        "before_packages": list(before_packages),
        "config": config.changes(),
        "files": {path: [hashlib.sha256(item.content).hexdigest(), item.mode, item.uid, item.gid] for path, item in sorted(files.items())},
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _mmdebstrap() -> str:
    binary = shutil.which("mmdebstrap")
    if binary is None:
        raise EngineUnavailable("mmdebstrap is not installed; run .ci/install-mmdebstrap.sh (Debian mmdebstrap)")
    return binary


def _has_image(engine: DockerEngine, reference: str) -> bool:
    return engine.docker("image", "inspect", reference, check=False, timeout=60).returncode == 0


def _image_size(engine: DockerEngine, reference: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", reference, timeout=60).stdout.strip() or 0)


def _files_tarball(destination: Path, files: Mapping[str, ImageFile]) -> None:
    """A tarball of file entries only: directory entries would overwrite the modes of /, /usr... on extraction."""
    with tarfile.open(destination, "w") as archive:
        for path, item in sorted(files.items()):
            if not path.startswith("/"):
                raise ValueError(f"image file paths are absolute (got {path!r})")
            member = tarfile.TarInfo(path.lstrip("/"))
            member.size = len(item.content)
            member.mode = item.mode
            member.uid, member.gid = item.uid, item.gid
            member.mtime = 0
            archive.addfile(member, io.BytesIO(item.content))


def build_rootfs(
    destination: Path,
    packages: Sequence[str],
    *,
    customize: Sequence[str] = (),
    files: Mapping[str, ImageFile] | None = None,
    before_packages: Sequence[str] = (),
) -> None:
    """Write a bookworm root filesystem tarball with `packages` to `destination` (mmdebstrap, essential variant).

    Hooks are shell commands run on the host with the root filesystem's path as
    "$1" (run a command inside it with `chroot "$1" ...`). `before_packages`
    run once the essential set is in and before `packages` are installed: the
    place to pin a system user's uid/gid (append to "$1/etc/passwd" and
    "$1/etc/group"; a package's `adduser --system` then reuses the account).
    After the packages, `files` are copied in, then each `customize` command runs.
    Hooks run on the host: a path through one of the root filesystem's absolute
    symlinks (/var/run -> /run, /var/lock) lands on the HOST, so write "$1/run/..."
    (build_rootfs refuses hooks that name "$1/var/run" or "$1/var/lock").
    """
    for hook in [*before_packages, *customize]:
        if "$1/var/run" in hook or "$1/var/lock" in hook:
            raise ValueError(f"{hook!r}: $1/var/run and $1/var/lock are symlinks to the host's /run; write $1/run instead")
    command = [_mmdebstrap(), "--variant=essential", "--mode=root" if os.geteuid() == 0 else "--mode=unshare", "--quiet"]
    command += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    if packages:
        command.append("--include=" + ",".join(sorted(set(packages))))
    command += [f"--essential-hook={hook}" for hook in before_packages]
    # mmdebstrap's last step empties /run, which would take the folders an image needs there
    # (/run/postgresql, /run/asterisk...) with it: empty it before the customize hooks instead.
    command += ["--skip=cleanup/run", '--customize-hook=find "$1/run" -mindepth 1 -delete']
    with tempfile.TemporaryDirectory(prefix="omnigen-rootfs-") as staging:
        if files:
            _files_tarball(Path(staging) / "files.tar", files)
            command.append(f"--customize-hook=tar-in {Path(staging) / 'files.tar'} /")
        command += [f"--customize-hook={hook}" for hook in customize]
        # The package lists are not needed at run time and mmdebstrap leaves them empty already; caches too.
        command += [SUITE, str(destination), *MIRRORS]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=MMDEBSTRAP_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")


def debian_image(
    engine: DockerEngine,
    name: str,
    packages: Sequence[str],
    *,
    customize: Sequence[str] = (),
    config: ImageConfig | None = None,
    files: Mapping[str, ImageFile] | None = None,
    before_packages: Sequence[str] = (),
    tags: Sequence[str] = (),
) -> str:
    """A Debian bookworm image with `packages` in `engine`, built at most once per content; returns its content tag.

    The content tag is `omnigen-e2e/NAME:HASH`. `tags` are extra references
    given to the same image, e.g. the exact `image:` a generated compose file
    names (`postgres:15-alpine`), so that file runs unmodified against it.
    See `build_rootfs` for `before_packages`, `files` and `customize`.
    Order of work: the engine already has the tag -> nothing; the cache holds
    `HASH.tar` -> `docker load`; otherwise mmdebstrap + `docker import`, then
    `docker save` into the cache (written atomically: a concurrent or broken
    run never leaves a half file under the final name).
    """
    config = config or ImageConfig()
    files = dict(files or {})
    digest = content_hash(name, packages, customize, config, files, before_packages)
    tag = f"{IMAGE_REPOSITORY}/{name}:{digest}"
    started = time.monotonic()
    source = "engine"
    if not _has_image(engine, tag):
        cached = cache_folder() / f"{name}-{digest}.tar"
        if cached.is_file():
            source = "cache"
            engine.docker("load", "--quiet", "--input", str(cached), timeout=DOCKER_IO_TIMEOUT_SECONDS)
        if not _has_image(engine, tag):
            source = "built"
            _build_and_import(engine, tag, packages, customize, config, files, before_packages)
            save_to_cache(engine, tag, cached)
    for reference in tags:
        engine.docker("tag", tag, reference, timeout=60)
    BUILD_LOG.append(BuildRecord(name, tag, source, time.monotonic() - started, _image_size(engine, tag)))
    return tag


def save_to_cache(engine: DockerEngine, reference: str, cached: Path) -> None:
    """`docker save` into the cache atomically (a concurrent or broken run never leaves half a file),
    then drop the earlier versions of the same image (`NAME-OTHERHASH.tar`): each is 0.1-1.7 GB."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}.partial")
    try:
        engine.docker("save", "--output", str(partial), reference, timeout=DOCKER_IO_TIMEOUT_SECONDS)
        partial.replace(cached)
    finally:
        partial.unlink(missing_ok=True)
    name = cached.stem.rsplit("-", 1)[0]
    for earlier in cached.parent.glob(f"{name}-*.tar"):
        if earlier != cached and earlier.stem.rsplit("-", 1)[0] == name:
            earlier.unlink(missing_ok=True)


def _build_and_import(
    engine: DockerEngine,
    tag: str,
    packages: Sequence[str],
    customize: Sequence[str],
    config: ImageConfig,
    files: Mapping[str, ImageFile],
    before_packages: Sequence[str],
) -> None:
    with tempfile.TemporaryDirectory(prefix="omnigen-image-", dir=engine.root) as folder:
        tarball = Path(folder) / "rootfs.tar"
        build_rootfs(tarball, packages, customize=customize, files=files, before_packages=before_packages)
        changes = [argument for change in config.changes() for argument in ("--change", change)]
        engine.docker("import", *changes, str(tarball), tag, timeout=DOCKER_IO_TIMEOUT_SECONDS)
