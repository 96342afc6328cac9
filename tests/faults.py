"""Fault injection for the write stage: count, fail or freeze every filesystem call.

`Faults` wraps the `os` functions the write stage uses to touch the disk. In a
counting run it records how many calls a write makes; then each call can be made
to fail in turn (`fail_at`), or the folder can be photographed just before each
call (`on_step`), which is exactly what a crash (power loss, SIGKILL) at that
point would leave behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Every os function the write stage (and the sidecar write) can call to read or change the disk.
WRAPPED = ("open", "read", "write", "fsync", "fchmod", "replace", "link", "mkdir", "chmod", "unlink", "rmdir", "lstat", "scandir")


class InjectedFault(OSError):
    pass


class Faults:
    def __init__(self, fail_at: int | None = None, on_step: Callable[[int, str], None] | None = None) -> None:
        self.fail_at = fail_at
        self.on_step = on_step
        self.calls: list[str] = []
        self._paused = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Let the test itself use the filesystem without counting."""
        self._paused, before = True, self._paused
        try:
            yield
        finally:
            self._paused = before

    def wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._paused:
                return original(*args, **kwargs)
            step = len(self.calls)
            self.calls.append(name)
            if self.on_step is not None:
                with self.paused():
                    self.on_step(step, name)
            if step == self.fail_at:
                raise InjectedFault(errno.EIO, f"injected failure of os.{name}", str(args[0]) if args else None)
            return original(*args, **kwargs)

        return wrapper

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Faults:
        for name in WRAPPED:
            monkeypatch.setattr(os, name, self.wrap(name, getattr(os, name)))
        return self


def photograph(root: Path) -> dict[str, tuple[str, bytes | None]]:
    """Everything under `root` (and whether it exists): path -> (kind + mode, content)."""
    if not os.path.lexists(root):
        return {}
    found: dict[str, tuple[str, bytes | None]] = {".": (f"dir {stat.S_IMODE(os.lstat(root).st_mode):o}", None)}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            info = os.lstat(path)
            relative = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = (f"dir {stat.S_IMODE(info.st_mode):o}", None)
            else:
                found[relative] = (f"file {stat.S_IMODE(info.st_mode):o}", path.read_bytes())
    return found


def copy_tree(source: Path, destination: Path) -> Path:
    """A byte and mode exact copy (symlinks kept as links)."""
    if source.exists():
        shutil.copytree(source, destination, symlinks=True)
    return destination
