"""Stage 5: the only stage that touches the disk.

Everything is rendered and verified in memory first. Files are written to a
temporary folder on the same filesystem, fsynced, then moved into place one by
one with os.replace, so each file is either the old or the new version, never
half of one. Secret-bearing files are created 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from omnigen.errors import OutputError

MANIFEST = ".omnigen-manifest.json"
SECRET_MODE = 0o600
FILE_MODE = 0o644


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Manifest:
    version: str
    profile_hash: str
    fingerprint: str
    files: dict[str, str]

    def dumps(self) -> str:
        return json.dumps(
            {"generator": "omnigen", "version": self.version, "profile_hash": self.profile_hash, "fingerprint": self.fingerprint, "files": dict(sorted(self.files.items()))},
            indent=2,
            sort_keys=False,
        ) + "\n"

    @classmethod
    def read(cls, out_dir: Path) -> Manifest | None:
        try:
            data = json.loads((out_dir / MANIFEST).read_text("utf-8"))
            return cls(str(data["version"]), str(data["profile_hash"]), str(data.get("fingerprint", "")), {str(k): str(v) for k, v in data["files"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass
class WriteReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


def _check_destination(out_dir: Path, relative: str) -> Path:
    if os.path.isabs(relative) or ".." in Path(relative).parts:
        raise OutputError(f"{relative}: output path escapes the output folder")
    target = out_dir / relative
    current = out_dir
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            raise OutputError(f"{current}: is a symlink; omnigen does not write through symlinks. Remove it and build again.")
    return target


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(target: Path, text: str, mode: int) -> None:
    """Write one file via a same-folder temporary file and os.replace."""
    if target.is_symlink():
        raise OutputError(f"{target}: is a symlink; omnigen does not write through symlinks. Remove it and try again.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _listing(out_dir: Path) -> list[str]:
    found = []
    for root, dirs, names in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".omnigen-staging")]
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), out_dir)
            found.append(rel.replace(os.sep, "/"))
    return sorted(found)


def write_outputs(
    out_dir: Path,
    files: dict[str, str],
    secret_files: frozenset[str],
    manifest: Manifest,
    *,
    force: bool = False,
) -> WriteReport:
    if out_dir.is_symlink():
        raise OutputError(f"{out_dir}: the output folder is a symlink; omnigen does not write through symlinks. Use the real path.")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    targets = {relative: _check_destination(out_dir, relative) for relative in files}
    previous = Manifest.read(out_dir) if out_dir.is_dir() else None
    report = WriteReport()

    edited = []
    for relative, target in targets.items():
        if not target.exists():
            continue
        current = target.read_bytes()
        try:
            current_text = current.decode("utf-8")
        except UnicodeDecodeError:
            current_text = None
        if current_text == files[relative]:
            continue
        known = previous.files.get(relative) if previous else None
        if current_text is None or known is None or sha256(current_text) != known:
            edited.append(relative)
    if edited and not force:
        raise OutputError(
            f"{out_dir}: refusing to overwrite files changed since omnigen wrote them: {', '.join(sorted(edited))}; "
            "move your change into the profile, or rerun with --force (keeps a .bak of each)"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".omnigen-staging-", dir=out_dir))
    try:
        for relative, text in files.items():
            staged = staging / relative
            staged.parent.mkdir(parents=True, exist_ok=True)
            mode = SECRET_MODE if relative in secret_files else FILE_MODE
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(staged, mode)
        staged_manifest = staging / MANIFEST
        staged_manifest.write_text(manifest.dumps(), encoding="utf-8")
        for relative, target in targets.items():
            if target.exists() and target.read_bytes() == files[relative].encode("utf-8"):
                if relative in secret_files and stat.S_IMODE(target.stat().st_mode) != SECRET_MODE:
                    os.chmod(target, SECRET_MODE)
                report.unchanged.append(relative)
                continue
            if relative in edited:
                backup = target.with_name(target.name + ".bak")
                shutil.copy2(target, backup)
                report.backups.append(relative + ".bak")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)
            report.written.append(relative)
        os.replace(staged_manifest, out_dir / MANIFEST)
        for directory in {target.parent for target in targets.values()} | {out_dir}:
            _fsync_dir(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ours = set(files) | {MANIFEST} | {name for name in report.backups}
    report.foreign = [name for name in _listing(out_dir) if name not in ours and not name.endswith(".bak")]
    return report
