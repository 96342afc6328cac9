"""Stage 5: the only stage that touches the output disk.

Everything is rendered and verified in memory before this module runs. Then:

1. `survey()` reads the output folder (never writes) and classifies every file:
   up to date, stale (an older omnigen output), edited (changed by someone since
   omnigen wrote it, or never written by omnigen), missing, obsolete, foreign.
   `build`, `check` and `diff` all use this one classification.
2. `write_outputs()` refuses unsafe folders (symlinks, escapes, non-regular
   files) and edited files (unless forced), then:
   a. stages every new file, fsynced, in a 0700 folder inside the output folder
      (same filesystem, so the moves below are atomic renames);
   b. replaces the manifest with an *incomplete* one that lists both the new and
      the previous hashes, so a crash while files move leaves a folder that
      `check` reports as stale and the next `build` does not mistake for edits;
   c. moves each file into place with os.replace (each file is whole: old or new);
   d. replaces the manifest with the complete one.
   Any error on the way undoes the steps already taken (journal), so the folder
   is byte-identical to before; the error is reported as exit 2.

Secret-bearing files and the manifest (which holds their hashes) are 0600.
Only stdlib imports here: `omnigen check` uses this module on its fast path.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from omnigen.errors import OutputError

MANIFEST = ".omnigen-manifest.json"
MANIFEST_FORMAT = 1
STAGING_PREFIX = ".omnigen-staging-"
SECRET_MODE = 0o600
FILE_MODE = 0o644
DIR_MODE = 0o755
# The manifest holds the sha256 of .env; with the rest of .env predictable, that
# hash would let anyone who can read it brute-force a weak password offline.
MANIFEST_MODE = SECRET_MODE
BACKUP_SUFFIX = ".bak"
# No output comes near this (a docker-compose.yml is tens of KiB): a larger file on disk is
# not omnigen's, and is classified without being read.
MAX_OUTPUT_BYTES = 16 << 20


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def mode_allows_others(mode: int) -> bool:
    """A secret file must not be readable or writable by group or others."""
    return bool(stat.S_IMODE(mode) & 0o077)


def loose_mode(path: Path) -> int | None:
    """The mode of a secret file when group or others can read or write it; None when private or absent.
    A symlink is not followed (build never chmods through one)."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) and mode_allows_others(info.st_mode) else None


def loose_mode_detail(path: Path, mode: int, holds: str = "secrets") -> str:
    """What `check` says about a secret file others can read, with the fix."""
    import shlex

    return (
        f"holds {holds} but has mode {stat.S_IMODE(mode):04o} (group or others can read it); "
        f"run `chmod 600 {shlex.quote(str(path))}` or `omnigen build`, which sets {SECRET_MODE:04o}"
    )


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class FileRecord:
    """What omnigen wrote to one output file."""

    sha256: str
    secret: bool


@dataclass(frozen=True)
class Manifest:
    """`.omnigen-manifest.json`: what the last build wrote, and from which inputs.

    `complete` is False while a build is moving files into place; `superseded`
    then keeps the hashes of the files it is replacing, so every file on disk is
    still recognised as omnigen's own if the build never finishes.
    """

    version: str
    profile_hash: str
    fingerprint: str
    files: Mapping[str, FileRecord]
    complete: bool = True
    superseded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def dumps(self) -> str:
        data: dict[str, object] = {
            "generator": "omnigen",
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "complete": self.complete,
            "profile_hash": self.profile_hash,
            "fingerprint": self.fingerprint,
            "files": {
                name: {"sha256": record.sha256, "secret": record.secret} for name, record in sorted(self.files.items())
            },
        }
        if self.superseded:
            data["superseded"] = {name: list(hashes) for name, hashes in sorted(self.superseded.items())}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def loads(cls, text: str) -> Manifest:
        """Parse a manifest; ValueError when it is not one omnigen wrote."""
        try:
            data = json.loads(text)
            if data.get("generator") != "omnigen" or data.get("format") != MANIFEST_FORMAT:
                raise ValueError("not an omnigen manifest of a known format")
            files = {
                str(name): FileRecord(str(entry["sha256"]), bool(entry["secret"])) for name, entry in dict(data["files"]).items()
            }
            superseded = {str(name): tuple(str(h) for h in hashes) for name, hashes in dict(data.get("superseded", {})).items()}
            return cls(
                version=str(data["version"]),
                profile_hash=str(data["profile_hash"]),
                fingerprint=str(data["fingerprint"]),
                files=files,
                complete=bool(data["complete"]),
                superseded=superseded,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed manifest ({exc})") from None

    def recorded(self, relative: str, digest: str) -> bool:
        """Did omnigen write exactly these bytes to `relative` (now or in an interrupted build)?"""
        record = self.files.get(relative)
        return (record is not None and record.sha256 == digest) or digest in self.superseded.get(relative, ())

    def known_paths(self) -> set[str]:
        return set(self.files) | set(self.superseded)


# --------------------------------------------------------------------------- reading the folder safely


def check_relative(relative: str) -> tuple[str, ...]:
    """The parts of an output path, refusing anything that could leave the output folder."""
    parts = tuple(relative.split("/"))
    if (
        not relative
        or relative.startswith("/")
        or "\\" in relative
        or "\x00" in relative
        or any(part in {"", ".", ".."} for part in parts)
    ):
        raise OutputError(f"{relative!r}: output path escapes the output folder or is not a plain relative path (omnigen bug)")
    return parts


def _refuse_symlink(path: Path, what: str) -> None:
    raise OutputError(
        f"{path}: {what} is a symlink; omnigen never writes through symlinks "
        "(the link could point anywhere, e.g. into /etc). Replace it with a real folder or file, or pass its real path with -o"
    )


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def check_parents(out_dir: Path) -> None:
    """Refuse a symlink among the parents of the output folder that someone else could point elsewhere.

    A parent symlink is followed only when it belongs to root or to the user running omnigen
    and sits in a folder that only root or that user can change (or a sticky one, where only
    the link's owner can replace it). Anything else could redirect the build's secrets
    into a folder of another user's choosing between two runs.
    """
    absolute = Path(os.path.abspath(out_dir))
    for parent in reversed(absolute.parents):
        info = _lstat(parent)
        if info is None:
            return  # nothing below a missing folder exists yet: the build creates it
        if not stat.S_ISLNK(info.st_mode):
            continue
        holder = os.lstat(parent.parent)
        holder_safe = _trusted_owner(holder.st_uid) and (not holder.st_mode & 0o022 or bool(holder.st_mode & stat.S_ISVTX))
        if not _trusted_owner(info.st_uid) or not holder_safe:
            why = f"belongs to uid {info.st_uid}" if not _trusted_owner(info.st_uid) else f"sits in {parent.parent}, which others can change"
            raise OutputError(
                f"{out_dir}: {parent} is a symlink among the parents of the output folder and {why}: another user could point it "
                f"elsewhere and receive the deployment's secrets; pass the real path with -o ({os.path.realpath(parent)}/...)"
            )


def check_out_dir(out_dir: Path) -> bool:
    """Refuse an output folder that is a symlink or not a folder, or whose parents another user could redirect; True when it exists."""
    check_parents(out_dir)
    try:
        info = os.lstat(out_dir)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot inspect the output folder ({exc.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        _refuse_symlink(out_dir, "the output folder")
    if not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{out_dir}: exists and is not a folder; choose another output folder with -o")
    return True


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def inspect_target(out_dir: Path, relative: str) -> os.stat_result | None:
    """lstat of an output file after checking every folder on the way; None when absent.

    Refuses a symlink anywhere below the output folder and any existing
    non-regular file (a FIFO would hang a read, a folder cannot be replaced).
    """
    parts = check_relative(relative)
    current = out_dir
    for index, part in enumerate(parts):
        current = current / part
        info = _lstat(current)
        if info is None:
            return None
        if stat.S_ISLNK(info.st_mode):
            _refuse_symlink(current, "an output path")
        last = index == len(parts) - 1
        if not last and not stat.S_ISDIR(info.st_mode):
            raise OutputError(f"{current}: exists and is not a folder, but omnigen writes {relative} inside it; move it away")
        if last and not stat.S_ISREG(info.st_mode):
            raise OutputError(f"{current}: exists and is not a regular file; omnigen writes {relative} here, move it away")
    real_root = os.path.realpath(out_dir)
    if os.path.commonpath([real_root, os.path.realpath(current)]) != real_root:
        raise OutputError(f"{current}: resolves outside the output folder {out_dir}")
    return info


def read_regular(path: Path, limit: int = MAX_OUTPUT_BYTES) -> bytes:
    """Read a file that inspect_target found regular, without following a symlink swapped in since.

    At most `limit` bytes: a file larger than anything omnigen writes (a 2 GB sparse file, say)
    is refused, never loaded; callers that can say something better check the size first.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputError(f"{path}: is not a regular file any more; another program is changing the output folder")
        chunks = []
        remaining = limit + 1
        while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 20))):
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining <= 0:
            raise OutputError(f"{path}: {oversize_detail(os.fstat(fd).st_size)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def oversize_detail(size: int) -> str:
    return f"is {size} bytes, far larger than anything omnigen writes ({MAX_OUTPUT_BYTES} bytes at most); move it away"


def read_manifest(out_dir: Path) -> tuple[Manifest | None, str | None]:
    """The folder's manifest, or None with the reason it cannot be used."""
    path = out_dir / MANIFEST
    info = _lstat(path)
    if info is None:
        return None, "no manifest"
    if stat.S_ISLNK(info.st_mode):
        _refuse_symlink(path, "the manifest")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{path}: exists and is not a regular file; move it away")
    if info.st_size > MAX_OUTPUT_BYTES:
        return None, f"unreadable manifest ({oversize_detail(info.st_size)})"
    try:
        return Manifest.loads(read_regular(path).decode("utf-8")), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"unreadable manifest ({exc})"


# --------------------------------------------------------------------------- survey


class State(StrEnum):
    UP_TO_DATE = "up-to-date"
    MISSING = "missing"  # build would create it
    STALE = "stale"  # omnigen wrote it, build would write something else
    EDITED = "edited"  # changed since omnigen wrote it (or never written by omnigen): build refuses
    MODE = "mode"  # right content, but a secret file readable by group/others
    OBSOLETE = "obsolete"  # omnigen wrote it, this build no longer produces it: build removes it


@dataclass(frozen=True)
class FileStatus:
    path: str
    state: State
    detail: str
    current: bytes | None  # what is on disk (None when absent)
    expected: bytes | None  # what build would write (None for obsolete files)
    mode: int | None  # permission bits on disk
    secret: bool
    oversize: bool = False  # too large to be omnigen's: never read (current is None), build refuses to touch it


@dataclass(frozen=True)
class Survey:
    out_dir: Path
    exists: bool
    manifest: Manifest | None
    manifest_problem: str | None
    files: tuple[FileStatus, ...]
    foreign: tuple[str, ...]

    @property
    def changes(self) -> tuple[FileStatus, ...]:
        return tuple(status for status in self.files if status.state is not State.UP_TO_DATE)

    @property
    def edited(self) -> tuple[FileStatus, ...]:
        return tuple(status for status in self.files if status.state is State.EDITED)


def _is_backup_of(name: str, outputs: set[str]) -> bool:
    base, sep, counter = name.rpartition(BACKUP_SUFFIX)
    return bool(sep) and (counter == "" or (counter.startswith(".") and counter[1:].isdigit())) and base in outputs


def listing(out_dir: Path) -> list[str]:
    """Every file below the output folder except omnigen's staging folders; symlinks are not followed."""
    found = []
    for root, dirs, names in os.walk(out_dir):
        dirs[:] = sorted(d for d in dirs if not (root == str(out_dir) and d.startswith(STAGING_PREFIX)))
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), out_dir).replace(os.sep, "/"))
    return sorted(found)


def survey(out_dir: Path, expected: Mapping[str, str], secret_files: Iterable[str]) -> Survey:
    """Compare the folder with what a build would write. Reads only; raises OutputError on unsafe folders."""
    secret = frozenset(secret_files)
    for relative in expected:
        check_relative(relative)
    exists = check_out_dir(out_dir)
    manifest, problem = read_manifest(out_dir) if exists else (None, "no output folder")
    statuses: list[FileStatus] = []
    for relative, text in expected.items():
        wanted = text.encode("utf-8")
        info = inspect_target(out_dir, relative) if exists else None
        is_secret = relative in secret
        if info is None:
            statuses.append(FileStatus(relative, State.MISSING, "build would create it", None, wanted, None, is_secret))
            continue
        mode = stat.S_IMODE(info.st_mode)
        if info.st_size > MAX_OUTPUT_BYTES:
            statuses.append(FileStatus(relative, State.EDITED, oversize_detail(info.st_size), None, wanted, mode, is_secret, oversize=True))
            continue
        current = read_regular(out_dir / relative)
        if current == wanted:
            if is_secret and mode_allows_others(mode):
                state, detail = State.MODE, loose_mode_detail(out_dir / relative, mode)
            else:
                state, detail = State.UP_TO_DATE, "up to date"
        elif manifest is not None and manifest.recorded(relative, sha256(current)):
            state, detail = State.STALE, "written by an earlier build; the profile, secrets or omnigen changed since"
        elif manifest is None:
            state, detail = State.EDITED, f"differs and its origin is unknown ({problem}): written by hand or another tool"
        else:
            state, detail = State.EDITED, "changed since omnigen wrote it"
        statuses.append(FileStatus(relative, state, detail, current, wanted, mode, is_secret))
    if exists:
        statuses += _manifest_mode(out_dir)
    foreign: list[str] = []
    if exists:
        recorded = manifest.known_paths() if manifest is not None else set()
        outputs = set(expected) | recorded
        for relative in listing(out_dir):
            if relative in expected or relative == MANIFEST or _is_backup_of(relative, outputs):
                continue
            try:
                info = inspect_target(out_dir, relative) if relative in recorded else None
            except OutputError:
                info = None  # e.g. a symlink now: not omnigen's to remove, so left alone like any foreign file
            if info is not None and manifest is not None and info.st_size <= MAX_OUTPUT_BYTES:
                current = read_regular(out_dir / relative)
                if manifest.recorded(relative, sha256(current)):
                    record = manifest.files.get(relative)
                    statuses.append(
                        FileStatus(
                            relative,
                            State.OBSOLETE,
                            "written by an earlier build, no longer produced: build removes it",
                            current,
                            None,
                            stat.S_IMODE(info.st_mode),
                            record.secret if record else False,
                        )
                    )
                    continue
            foreign.append(relative)
    return Survey(out_dir, exists, manifest, problem, tuple(statuses), tuple(foreign))


def _manifest_mode(out_dir: Path) -> list[FileStatus]:
    """The manifest holds the sha256 of .env: reported (and fixed by build) like a secret file others can read."""
    path = out_dir / MANIFEST
    info = _lstat(path)
    if info is None or not stat.S_ISREG(info.st_mode) or not mode_allows_others(info.st_mode) or info.st_size > MAX_OUTPUT_BYTES:
        return []
    current = read_regular(path)
    mode = stat.S_IMODE(info.st_mode)
    detail = loose_mode_detail(path, mode, "the sha256 of .env")
    return [FileStatus(MANIFEST, State.MODE, detail, current, current, mode, True)]


def unrecorded_files(out_dir: Path, manifest: Manifest) -> list[str]:
    """Files below the folder that the manifest does not list (foreign files), backups excluded."""
    outputs = set(manifest.files)
    return [name for name in listing(out_dir) if name not in outputs and name != MANIFEST and not _is_backup_of(name, outputs)]


def recorded_files_match(out_dir: Path, fingerprint: str) -> Manifest | None:
    """The fast path of `omnigen check`: the manifest, when it proves the folder up to date.

    Returned only when the manifest is complete, was written for exactly these inputs
    (`fingerprint`), and every recorded file is on disk, regular, with the
    recorded sha256 and (for secrets) a private mode. Otherwise the caller must
    compile and compare.
    """
    try:
        if not check_out_dir(out_dir):
            return None
        manifest, _ = read_manifest(out_dir)
        if manifest is None or not manifest.complete or manifest.fingerprint != fingerprint:
            return None
        if _manifest_mode(out_dir):
            return None
        for relative, record in manifest.files.items():
            info = inspect_target(out_dir, relative)
            if info is None or (record.secret and mode_allows_others(info.st_mode)) or info.st_size > MAX_OUTPUT_BYTES:
                return None
            if sha256(read_regular(out_dir / relative)) != record.sha256:
                return None
    except (OutputError, OSError):
        return None  # the slow path reports it properly
    return manifest


# --------------------------------------------------------------------------- writing


@dataclass
class WriteReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    modes_fixed: list[str] = field(default_factory=list)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _create_file(path: Path, data: bytes, mode: int) -> None:
    """Create a new file (never an existing one) with exactly `mode`, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)  # the umask must not loosen or tighten what we chose
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames in `path` durable. Best effort: some filesystems refuse fsync on folders."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(target: Path, text: str, mode: int) -> None:
    """Replace one file via a same-folder temporary file and os.replace, with exactly `mode`.

    The file is the old one or the new one, never half of either. Refuses symlinks
    and non-regular files; an OSError becomes an OutputError (exit 2) naming the file.
    """
    try:
        info = _lstat(target)
        if info is not None and stat.S_ISLNK(info.st_mode):
            _refuse_symlink(target, "the file")
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise OutputError(f"{target}: exists and is not a regular file; move it away")
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            _create_file(temp, text.encode("utf-8"), mode)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc}); the file is unchanged") from None
    fsync_dir(target.parent)


class _Journal:
    """Undo log of the changes a write made, replayed backwards on failure."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def did(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def rollback(self) -> list[str]:
        """Undo everything; return what could not be undone (reported, never raised)."""
        failures = []
        for undo in reversed(self._undo):
            try:
                undo()
            except OSError as exc:
                failures.append(f"{exc.filename or ''}: {exc.strerror or exc}")
        self._undo.clear()
        return failures


def _make_dirs(path: Path, journal: _Journal) -> list[Path]:
    """mkdir -p, recording each folder created so a rollback removes it again; the folders it created."""
    missing = []
    current = path
    while _lstat(current) is None:
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        os.mkdir(folder, DIR_MODE)
        journal.did(functools.partial(os.rmdir, folder))
    return missing


def _lock(out_dir: Path) -> int:
    """Hold an exclusive lock on the output folder for the duration of a write."""
    fd = os.open(out_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"{out_dir}: another omnigen build is writing this folder; wait for it and try again") from None
    return fd


# Errors that mean "this folder cannot take a lock file": nobody can write a sidecar there either.
_CANNOT_CREATE = {errno.EACCES, errno.EPERM, errno.EROFS}


def sidecar_lock_path(sidecar: Path) -> Path:
    return sidecar.with_name(f".{sidecar.name}.lock")


def _open_lock_file(path: Path) -> int | None:
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | flags, SECRET_MODE)
    except OSError as exc:
        if exc.errno not in _CANNOT_CREATE:
            raise
    try:
        return os.open(path, os.O_RDONLY | flags)  # flock works on a read-only descriptor
    except OSError as exc:
        if exc.errno in _CANNOT_CREATE or exc.errno == errno.ENOENT:
            return None
        raise


@contextmanager
def sidecar_lock(sidecar: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the profile's secrets lock from reading the sidecar until the outputs are written.

    Two builds of one profile (into one folder or two) would otherwise both find
    no sidecar, both generate secrets, and leave one folder deployed with secrets
    that exist nowhere else. The lock is `flock` on `.<sidecar>.lock` beside the
    sidecar (the sidecar itself is replaced by rename, so it cannot carry a lock).
    The holder removes the lock file when done; a waiter that then gets the lock
    on the removed file notices (its inode is no longer the path's) and retries.

    Where the lock file cannot be created (a read-only folder), no build can
    write the sidecar either, so the build goes on unlocked: it can only use the
    secrets already there.
    """
    path = sidecar_lock_path(sidecar)
    try:
        fd = _acquire(path, on_wait)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_symlink(path, "the secrets lock")
        raise OutputError(f"{path}: cannot lock the secrets sidecar {sidecar} ({exc.strerror or exc})") from None
    if fd is None:
        yield
        return
    try:
        yield
    finally:
        # While still holding it: waiters see their inode is gone and retry. A lock file
        # left behind (best effort) is simply reused by the next build.
        _remove_own_lock_file(path, fd)
        os.close(fd)


def _acquire(path: Path, on_wait: Callable[[], None] | None) -> int | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = _open_lock_file(path)
        if fd is None:
            return None
        locked = False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OutputError(f"{path}: the secrets lock is not a regular file; remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
            held = os.fstat(fd)
            now = _lstat(path)
        except BaseException:
            if locked:
                _remove_own_lock_file(path, fd)
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)  # the previous holder removed this lock file: take the new one


def _remove_own_lock_file(path: Path, fd: int) -> None:
    """Best effort, while holding the lock: never remove a newer lock file another build holds."""
    try:
        held, now = os.fstat(fd), _lstat(path)
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            os.unlink(path)
    except OSError:
        pass


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders left by a build that was killed (we hold the lock, so none is in use). Best effort."""
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def _free_backup_name(target: Path) -> Iterable[Path]:
    yield target.with_name(target.name + BACKUP_SUFFIX)
    for counter in range(2, 1000):
        yield target.with_name(f"{target.name}{BACKUP_SUFFIX}.{counter}")


def keep_backup(target: Path, replacement: str, mode: int) -> Path | None:
    """Before a file outside an output folder is replaced (import --force): copy it to the first free
    `.bak` name with `mode`; None when there is nothing to keep (absent, or already the new text)."""
    try:
        info = _lstat(target)
        if info is None:
            return None
        if not stat.S_ISREG(info.st_mode):
            raise OutputError(f"{target}: exists and is not a regular file; move it away")
        current = read_regular(target)
        if current == replacement.encode("utf-8"):
            return None
        for candidate in _free_backup_name(target):
            try:
                _create_file(candidate, current, mode)
            except FileExistsError:
                continue
            fsync_dir(target.parent)
            return candidate
    except OSError as exc:
        raise OutputError(f"{target}: cannot keep a backup before replacing it ({exc.strerror or exc}); nothing was written") from None
    raise OutputError(f"{target}: too many backups ({target.name}.bak ...); delete old ones and try again")


def _place_backup(staged: Path, target: Path, data: bytes, mode: int) -> Path:
    """Hard-link a staged copy to the first free `.bak` name: link never overwrites an older backup."""
    for candidate in _free_backup_name(target):
        try:
            _link_or_copy(staged, candidate, data, mode)
        except FileExistsError:
            continue
        return candidate
    raise OutputError(f"{target}: too many backups ({target.name}.bak ...); delete old ones and try again")


# Filesystems without hard links (FAT, some network and FUSE mounts) answer link() with these.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _link_or_copy(source: Path, destination: Path, data: bytes, mode: int) -> None:
    """A second name for `source` (same inode, owner and mode); a copy of `data` where links are unsupported.
    Never overwrites `destination` (FileExistsError)."""
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        _create_file(destination, data, mode)


def write_outputs(
    out_dir: Path,
    files: Mapping[str, str],
    secret_files: Iterable[str],
    manifest: Manifest,
    *,
    force: bool = False,
    before_write: Callable[[], None] | None = None,
) -> WriteReport:
    """Bring `out_dir` to exactly `files` + manifest, all or nothing (see the module doc).

    `before_write` runs after every refusal check and before the first change to
    the folder; the pipeline writes the secrets sidecar there, so a refused build
    generates nothing and a failed write still keeps the secrets it deployed.
    """
    try:
        exists = check_out_dir(out_dir)
        lock_fd = _lock(out_dir) if exists else None
    except OSError as exc:
        raise OutputError(f"{exc.filename or out_dir}: cannot open the output folder ({exc.strerror or exc})") from None
    try:
        state = _survey_or_refuse(out_dir, files, frozenset(secret_files))
        oversize = [status for status in state.files if status.oversize]
        if oversize:
            raise OutputError(
                "; ".join(f"{out_dir / status.path}: {status.detail}" for status in oversize)
                + " (build does not replace it, even with --force: it cannot keep a .bak of it)"
            )
        if state.edited and not force:
            names = ", ".join(status.path for status in state.edited)
            raise OutputError(
                f"{out_dir}: refusing to overwrite {names}: changed since omnigen wrote them. "
                "Move the change into the profile (or its secrets sidecar) and rebuild; "
                f"`omnigen diff PROFILE -o {out_dir}` shows what build would change; "
                "or rerun with --force to overwrite (a .bak copy of each is kept)"
            )
        if before_write is not None:
            before_write()
        if exists:
            _remove_stale_staging(out_dir)  # even when nothing else changes: they may hold secrets
        return _apply(out_dir, state, manifest)
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _survey_or_refuse(out_dir: Path, files: Mapping[str, str], secret: frozenset[str]) -> Survey:
    try:
        return survey(out_dir, files, secret)
    except OSError as exc:
        raise OutputError(f"{exc.filename or out_dir}: cannot read the output folder ({exc.strerror or exc})") from None


def _apply(out_dir: Path, state: Survey, manifest: Manifest) -> WriteReport:
    report = WriteReport(foreign=list(state.foreign))
    to_write = [status for status in state.files if status.state in {State.MISSING, State.STALE, State.EDITED}]
    to_chmod = [status for status in state.files if status.state is State.MODE]
    to_remove = [status for status in state.files if status.state is State.OBSOLETE]
    report.unchanged = [status.path for status in state.files if status.state in {State.UP_TO_DATE, State.MODE} and status.path != MANIFEST]
    final_manifest = manifest.dumps().encode("utf-8")
    manifest_path = out_dir / MANIFEST
    journal = _Journal()
    created_lock: int | None = None
    try:
        current_manifest = read_regular(manifest_path) if state.exists and _lstat(manifest_path) is not None else None
        if not (to_write or to_chmod or to_remove) and current_manifest == final_manifest:
            return report
        if not state.exists:
            if out_dir not in _make_dirs(out_dir, journal):
                # Surveyed as absent, but another build created it since: that survey says nothing now.
                raise OutputError(f"{out_dir}: another omnigen build created this folder meanwhile; try again")
            created_lock = _lock(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))  # mode 0700: it holds secrets
        # Undone after every restore that reads from it, and before the folders are removed.
        journal.did(lambda: shutil.rmtree(staging, ignore_errors=True))
        for part in ("new", "previous", "backup"):
            os.mkdir(staging / part)

        # a. stage every new file and the final manifest
        for status in to_write:
            staged = staging / "new" / status.path
            staged.parent.mkdir(parents=True, exist_ok=True)
            assert status.expected is not None
            _create_file(staged, status.expected, SECRET_MODE if status.secret else FILE_MODE)
        _create_file(staging / "manifest", final_manifest, MANIFEST_MODE)

        # b. an incomplete manifest that recognises both the old and the new files
        pending = Manifest(
            manifest.version,
            manifest.profile_hash,
            "",  # matches no fingerprint: check never takes its fast path on a half-moved folder
            manifest.files,
            complete=False,
            superseded=_superseded(state, (*to_write, *to_remove)),
        )
        _create_file(staging / "manifest.pending", pending.dumps().encode("utf-8"), MANIFEST_MODE)
        if current_manifest is not None:
            _link_or_copy(manifest_path, staging / "previous-manifest", current_manifest, MANIFEST_MODE)
        os.replace(staging / "manifest.pending", manifest_path)
        if current_manifest is not None:
            journal.did(lambda: os.replace(staging / "previous-manifest", manifest_path))
        else:
            journal.did(lambda: os.unlink(manifest_path))
        fsync_dir(out_dir)

        # c. move files into place, keeping each previous version for a rollback
        for status in to_write:
            _move_into_place(out_dir, staging, status, journal, report)
        for status in to_chmod:
            target = out_dir / status.path
            old_mode = status.mode if status.mode is not None else FILE_MODE
            os.chmod(target, SECRET_MODE)
            journal.did(functools.partial(os.chmod, target, old_mode))
            report.modes_fixed.append(status.path)
        for status in to_remove:
            target = out_dir / status.path
            previous = staging / "previous" / status.path
            previous.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, previous)
            journal.did(functools.partial(os.replace, previous, target))
            report.removed.append(status.path)

        # d. the complete manifest: from here on `check` can take its fast path
        os.replace(staging / "manifest", manifest_path)
        for folder in sorted({(out_dir / status.path).parent for status in to_write} | {out_dir}):
            fsync_dir(folder)
        shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        failures = journal.rollback()
        if isinstance(exc, OSError):
            message = f"{exc.filename or out_dir}: cannot write the output ({exc.strerror or exc})"
            if failures:
                message += "; could not restore everything: " + "; ".join(failures)
            else:
                message += f"; {out_dir} is as it was before this build"
            raise OutputError(message, folder_changed=bool(failures)) from None
        if isinstance(exc, OutputError) and failures:
            exc.folder_changed = True
        raise
    finally:
        if created_lock is not None:
            os.close(created_lock)
    return report


def _superseded(state: Survey, replaced: Iterable[FileStatus]) -> dict[str, tuple[str, ...]]:
    """Hashes of everything omnigen may have left at each replaced path."""
    superseded: dict[str, tuple[str, ...]] = {}
    for status in replaced:
        known: list[str] = []
        if status.current is not None:
            known.append(sha256(status.current))
        if state.manifest is not None:
            record = state.manifest.files.get(status.path)
            known += [record.sha256] if record else []
            known += state.manifest.superseded.get(status.path, ())
        superseded[status.path] = tuple(dict.fromkeys(known))
    return superseded


def _move_into_place(out_dir: Path, staging: Path, status: FileStatus, journal: _Journal, report: WriteReport) -> None:
    target = out_dir / status.path
    _make_dirs(target.parent, journal)
    if status.current is None:
        os.replace(staging / "new" / status.path, target)
        journal.did(lambda: os.unlink(target))
    else:
        # A hard link keeps the previous version for a rollback while the name
        # always points at a whole file (old or new), never at nothing.
        previous = staging / "previous" / status.path
        previous.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(target, previous, status.current, stat.S_IMODE(status.mode if status.mode is not None else FILE_MODE))
        if status.state is State.EDITED:
            copy = staging / "backup" / status.path.replace("/", "_")
            backup_mode = SECRET_MODE if status.secret else stat.S_IMODE(status.mode or FILE_MODE)
            _create_file(copy, status.current, backup_mode)
            placed = _place_backup(copy, target, status.current, backup_mode)
            journal.did(lambda: os.unlink(placed))
            report.backups.append(placed.relative_to(out_dir).as_posix())
        os.replace(staging / "new" / status.path, target)
        journal.did(lambda: os.replace(previous, target))
    report.written.append(status.path)


def hand_over(out_dir: Path, files: Iterable[str], folders: Iterable[str], uid: int, gid: int, reader: str) -> str | None:
    """Give written files, and folders a container writes into (created 0700 if missing), to a container's user.

    Only root can; the caller decides. Never follows a symlink: a link planted in the output folder
    must not make root chown something else. The outputs are written by then, so a failure is
    reported (returned), not raised: the folder is complete, only the ownership is left to do.
    """
    try:
        for relative in files:
            target = out_dir / relative
            if target.is_file() and not target.is_symlink():
                os.chown(target, uid, gid, follow_symlinks=False)
        for relative in folders:
            target = out_dir / relative
            if target.is_symlink():
                return f"{target} is a symlink; omnigen does not give a linked folder to uid {uid} (remove it and build again)"
            target.mkdir(mode=0o700, exist_ok=True)
            os.chown(target, uid, gid, follow_symlinks=False)
    except OSError as exc:
        return f"cannot give {exc.filename or 'a file'} to uid {uid} ({exc.strerror or exc}); run `chown {uid}:{gid}` on it before starting {reader}"
    return None
