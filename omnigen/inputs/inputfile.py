"""The one way omnigen reads an input file: regular files only, never more than a bound.

Every input (profile, secrets sidecar, compose files, .env and env_file files,
mounted configs) goes through `read_input`. A FIFO would hang a plain open() until
some writer appears, `/dev/zero` never ends and a device can be anything, so the
file type is checked with stat() before opening, the open is non-blocking (a FIFO
swapped in after the stat still cannot hang it), the type is checked again on the
open descriptor, and at most `limit` + 1 bytes are read. Only stdlib imports here:
the fast path of `omnigen check` reads through it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from omnigen.errors import InputFileError

KIB = 1 << 10
MIB = 1 << 20
# The profile and its sidecar are a few KiB; the bound only has to stop /dev/zero-like input.
MAX_TOML_BYTES = 1 * MIB
# Every file of a deployment (compose files, .env, env_file, mounted configs): a compose file
# of 20,000 services is about 2 MiB, and parsing YAML costs ~100x its size in memory.
MAX_DEPLOYMENT_BYTES = 16 * MIB

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB else f"{limit // KIB} KiB"


def _refuse_type(path: str | Path, what: str, mode: int) -> InputFileError:
    return InputFileError(
        str(path), what, f"is {_kind(mode)}, not a regular file", "omnigen reads only regular files (a FIFO would hang, a device may never end)"
    )


def _refuse_size(path: str | Path, what: str, limit: int) -> InputFileError:
    return InputFileError(str(path), what, f"is larger than {_size(limit)}, far more than any real one", "check the path")


def read_input(path: str | Path, *, limit: int, what: str) -> bytes | None:
    """The bytes of a regular file, None when it does not exist.

    Raises InputFileError (exit 2) for a folder, FIFO, device or socket, or a file
    larger than `limit`; OSError for other failures (permission denied, I/O error).
    Symlinks are followed: inputs may live anywhere the user points.
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        raise _refuse_type(path, what, info.st_mode)
    if info.st_size > limit:
        raise _refuse_size(path, what, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise _refuse_type(path, what, opened.st_mode)
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0 and (chunk := os.read(fd, min(remaining, MIB))):
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # the file grew after the stat
        raise _refuse_size(path, what, limit)
    return data
