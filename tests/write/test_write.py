"""The write stage: all-or-nothing output, manifest, edit detection, refusals, permissions."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

from omnigen.errors import OutputError
from omnigen.write.outputs import (
    MANIFEST,
    STAGING_PREFIX,
    FileRecord,
    Manifest,
    State,
    read_manifest,
    read_regular,
    recorded_files_match,
    sha256,
    survey,
    write_file_atomic,
    write_outputs,
)
from tests.faults import Faults, copy_tree, photograph

SECRET_FILES = frozenset({".env"})
OLD = {
    "docker-compose.yml": 'name: "demo"\nservices: {}\n',
    ".env": 'POSTGRES_PASSWORD="old-secret"\n',
    "asterisk/rtp.conf": "[general]\nrtpstart=10000\nrtpend=10099\n",
    "nginx/nginx.conf": "events {}\n",
}
NEW = {
    "docker-compose.yml": 'name: "demo"\nservices: {web: {image: "x:1"}}\n',
    ".env": 'POSTGRES_PASSWORD="new-secret"\n',
    "asterisk/rtp.conf": "[general]\nrtpstart=10000\nrtpend=10199\n",
    "nginx/nginx.conf": "events {}\n",  # unchanged between the two
    "asterisk/pjsip.conf": "[transport-udp]\ntype=transport\n",  # new in NEW
}


def manifest_for(files: dict[str, str], fingerprint: str) -> Manifest:
    return Manifest(
        version="test",
        profile_hash="p-" + fingerprint,
        fingerprint=fingerprint,
        files={name: FileRecord(sha256(text), name in SECRET_FILES) for name, text in files.items()},
    )


def write(out: Path, files: dict[str, str], fingerprint: str, *, force: bool = False) -> object:
    return write_outputs(out, files, SECRET_FILES, manifest_for(files, fingerprint), force=force)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_final(out: Path, files: dict[str, str], fingerprint: str, *, staging_left: bool = False) -> None:
    for name, text in files.items():
        assert (out / name).read_text() == text, name
    manifest, problem = read_manifest(out)
    assert manifest is not None, problem
    assert manifest.complete and manifest.fingerprint == fingerprint
    assert {name: record.sha256 for name, record in manifest.files.items()} == {n: sha256(t) for n, t in files.items()}
    assert recorded_files_match(out, fingerprint) is not None
    assert staging_left or not [name for name in os.listdir(out) if name.startswith(STAGING_PREFIX)]


# --------------------------------------------------------------------------- basics


def test_fresh_write_creates_files_manifest_and_private_modes(tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "out"  # parents are created too
    report = write(out, OLD, "fp-old")
    assert sorted(report.written) == sorted(OLD)  # type: ignore[attr-defined]
    assert_final(out, OLD, "fp-old")
    assert mode(out / ".env") == 0o600
    assert mode(out / MANIFEST) == 0o600, "the manifest holds the hash of .env"
    assert mode(out / "docker-compose.yml") == 0o644
    data = json.loads((out / MANIFEST).read_text())
    assert data["generator"] == "omnigen" and data["version"] == "test" and data["profile_hash"] == "p-fp-old"
    assert data["files"][".env"] == {"sha256": sha256(OLD[".env"]), "secret": True}
    assert "old-secret" not in (out / MANIFEST).read_text()


def test_modes_do_not_depend_on_umask(tmp_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        write(tmp_path / "loose", OLD, "fp")
    finally:
        os.umask(0o077)
    try:
        write(tmp_path / "tight", OLD, "fp")
    finally:
        os.umask(previous)
    for folder in ("loose", "tight"):
        assert mode(tmp_path / folder / ".env") == 0o600
        assert mode(tmp_path / folder / "docker-compose.yml") == 0o644


def test_rebuild_with_same_output_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp")
    before = {name: os.stat(out / name).st_mtime_ns for name in OLD}
    inode = os.stat(out / MANIFEST).st_ino
    report = write(out, OLD, "fp")
    assert report.written == [] and sorted(report.unchanged) == sorted(OLD)  # type: ignore[attr-defined]
    assert {name: os.stat(out / name).st_mtime_ns for name in OLD} == before
    assert os.stat(out / MANIFEST).st_ino == inode


def test_new_inputs_replace_stale_files_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    report = write(out, NEW, "fp-new")
    assert_final(out, NEW, "fp-new")
    assert "nginx/nginx.conf" in report.unchanged  # type: ignore[attr-defined]
    assert not list(out.rglob("*.bak"))


# --------------------------------------------------------------------------- edits and foreign files


@pytest.mark.parametrize("edited", [".env", "asterisk/rtp.conf"])
def test_edited_file_is_refused_by_name_and_nothing_changes(tmp_path: Path, edited: str) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    with (out / edited).open("a") as handle:
        handle.write("# my hand edit\n")
    before = photograph(out)
    with pytest.raises(OutputError) as caught:
        write(out, NEW, "fp-new")
    message = str(caught.value)
    assert edited in message and "--force" in message and "omnigen diff" in message
    assert photograph(out) == before


def test_force_overwrites_and_keeps_every_backup(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    (out / ".env").write_text('POSTGRES_PASSWORD="hand-edit-1"\n')
    report = write(out, NEW, "fp-new", force=True)
    assert report.backups == [".env.bak"]  # type: ignore[attr-defined]
    assert (out / ".env.bak").read_text() == 'POSTGRES_PASSWORD="hand-edit-1"\n'
    assert mode(out / ".env.bak") == 0o600, "a backup of a secret file is a secret file"
    assert_final(out, NEW, "fp-new")

    (out / ".env").write_text('POSTGRES_PASSWORD="hand-edit-2"\n')
    report = write(out, OLD, "fp-old", force=True)
    assert report.backups == [".env.bak.2"], "an older backup is never overwritten"  # type: ignore[attr-defined]
    assert (out / ".env.bak").read_text() == 'POSTGRES_PASSWORD="hand-edit-1"\n'
    assert (out / ".env.bak.2").read_text() == 'POSTGRES_PASSWORD="hand-edit-2"\n'
    assert survey(out, OLD, SECRET_FILES).foreign == (), "backups are not reported as foreign files"


def test_files_without_manifest_are_treated_as_hand_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "docker-compose.yml").write_text("services: {}\n")  # e.g. the hand-written v2 deployment
    with pytest.raises(OutputError, match=r"docker-compose\.yml"):
        write(out, OLD, "fp")
    assert (out / "docker-compose.yml").read_text() == "services: {}\n"
    status = {s.path: s for s in survey(out, OLD, SECRET_FILES).files}["docker-compose.yml"]
    assert status.state is State.EDITED and "no manifest" in status.detail


def test_identical_files_without_manifest_are_adopted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "docker-compose.yml").write_text(OLD["docker-compose.yml"])
    write(out, OLD, "fp")
    assert_final(out, OLD, "fp")


def test_foreign_files_are_left_alone_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    (out / "README.local").write_text("mine\n")
    (out / "asterisk" / "extensions.conf").write_text("[from-internal]\n")
    report = write(out, NEW, "fp-new")
    assert sorted(report.foreign) == ["README.local", "asterisk/extensions.conf"]  # type: ignore[attr-defined]
    assert (out / "README.local").read_text() == "mine\n"
    assert (out / "asterisk" / "extensions.conf").read_text() == "[from-internal]\n"


def test_obsolete_files_are_removed_unless_edited(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, NEW, "fp-new")
    smaller = {name: text for name, text in NEW.items() if name != "asterisk/pjsip.conf"}
    report = write(out, smaller, "fp-small")
    assert report.removed == ["asterisk/pjsip.conf"]  # type: ignore[attr-defined]
    assert not (out / "asterisk" / "pjsip.conf").exists()
    assert_final(out, smaller, "fp-small")

    write(out, NEW, "fp-new")
    (out / "asterisk" / "pjsip.conf").write_text("; edited by hand\n")
    report = write(out, smaller, "fp-small")
    assert report.removed == [] and "asterisk/pjsip.conf" in report.foreign  # type: ignore[attr-defined]
    assert (out / "asterisk" / "pjsip.conf").read_text() == "; edited by hand\n"


def test_loosened_secret_mode_is_reported_and_repaired(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp")
    os.chmod(out / ".env", 0o644)
    assert recorded_files_match(out, "fp") is None, "the fast path must not accept a world-readable .env"
    states = {status.path: status.state for status in survey(out, OLD, SECRET_FILES).files}
    assert states[".env"] is State.MODE
    report = write(out, OLD, "fp")
    assert report.modes_fixed == [".env"]  # type: ignore[attr-defined]
    assert mode(out / ".env") == 0o600


# --------------------------------------------------------------------------- refusals


def test_symlinked_output_folder_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OutputError, match="symlink"):
        write(tmp_path / "link", OLD, "fp")
    assert list(real.iterdir()) == []


def test_symlinked_output_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp")
    elsewhere = tmp_path / "elsewhere.env"
    elsewhere.write_text("precious\n")
    (out / ".env").unlink()
    (out / ".env").symlink_to(elsewhere)
    with pytest.raises(OutputError, match=r"\.env.*symlink"):
        write(out, NEW, "fp-new", force=True)
    assert elsewhere.read_text() == "precious\n"
    assert os.path.islink(out / ".env")


def test_symlinked_subfolder_is_refused_so_nothing_lands_outside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outside = tmp_path / "etc-asterisk"
    outside.mkdir()
    out.mkdir()
    (out / "asterisk").symlink_to(outside)
    with pytest.raises(OutputError, match=r"asterisk.*symlink"):
        write(out, OLD, "fp")
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(out)) == ["asterisk"]


@pytest.mark.parametrize("relative", ["../escape.txt", "/tmp/abs.txt", "a/../../b.txt", "", "a//b", "./a", "a\\..\\b", "a\x00b"])
def test_paths_escaping_the_output_folder_are_refused(tmp_path: Path, relative: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="escapes the output folder"):
        write(out, {**OLD, relative: "x\n"}, "fp")
    assert os.listdir(tmp_path) == []


def test_output_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder\n")
    with pytest.raises(OutputError, match="not a folder"):
        write(tmp_path / "out", OLD, "fp")


def test_fifo_or_folder_in_place_of_an_output_is_refused_without_hanging(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "docker-compose.yml")
    with pytest.raises(OutputError, match="not a regular file"):
        write(out, OLD, "fp")
    os.unlink(out / "docker-compose.yml")
    (out / ".env").mkdir()
    with pytest.raises(OutputError, match="not a regular file"):
        write(out, OLD, "fp")


def test_concurrent_build_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match="another omnigen build"):
            write(out, NEW, "fp-new")
    finally:
        os.close(fd)
    assert_final(out, OLD, "fp-old")


def test_write_file_atomic_refuses_symlink_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "side.secrets.toml"
    write_file_atomic(target, "a = 1\n", 0o600)
    assert mode(target) == 0o600 and target.read_text() == "a = 1\n"
    os.chmod(target, 0o644)
    write_file_atomic(target, "a = 2\n", 0o600)
    assert mode(target) == 0o600
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="symlink"):
        write_file_atomic(link, "b = 1\n", 0o600)
    assert target.read_text() == "a = 2\n"


def test_unreadable_or_foreign_manifest_is_not_trusted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp")
    (out / MANIFEST).write_text('{"generator": "someone-else"}')
    manifest, problem = read_manifest(out)
    assert manifest is None and problem is not None and "manifest" in problem
    with pytest.raises(OutputError):
        write(out, NEW, "fp-new")  # nothing is known to be omnigen's any more: files count as edited


# --------------------------------------------------------------------------- failures and crashes


def _count_steps(monkeypatch: pytest.MonkeyPatch, out: Path, files: dict[str, str], fingerprint: str, *, force: bool) -> list[str]:
    scratch = copy_tree(out, out.with_name(out.name + "-count"))
    with monkeypatch.context() as patch:
        faults = Faults().install(patch)
        write(scratch, files, fingerprint, force=force)
    return faults.calls


def _without_staging(photo: dict[str, tuple[str, bytes | None]]) -> dict[str, tuple[str, bytes | None]]:
    return {name: value for name, value in photo.items() if not name.startswith(STAGING_PREFIX)}


@pytest.mark.parametrize("previous", ["none", "old-build", "edited-forced"])
def test_a_failure_at_any_step_leaves_the_previous_output_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, previous: str
) -> None:
    base = tmp_path / "base"
    force = False
    if previous != "none":
        write(base, OLD, "fp-old")
        (base / "notes.txt").write_text("foreign\n")
    if previous == "edited-forced":
        (base / ".env").write_text('POSTGRES_PASSWORD="edited"\n')
        force = True
    calls = _count_steps(monkeypatch, base, NEW, "fp-new", force=force)
    assert {"replace", "write", "mkdir", "fsync", "open"} <= set(calls)
    leftovers = 0
    survived: set[str] = set()
    for step, name in enumerate(calls):
        out = copy_tree(base, tmp_path / f"run-{step}")
        before = photograph(out)
        with monkeypatch.context() as patch:
            Faults(fail_at=step).install(patch)
            try:
                write(out, NEW, "fp-new", force=force)
            except OutputError as error:
                assert "injected failure" in str(error), (step, name, error)
                after = photograph(out)
                assert _without_staging(after) == before, f"step {step} (os.{name}) left a partial output"
                leftovers += after != before
            else:
                # Best-effort steps (fsync of a folder, removing the staging folder) may fail
                # without failing the build; the output is then complete.
                survived.add(name)
                assert_final(out, NEW, "fp-new", staging_left=True)
        # A later build cleans up whatever a failed cleanup left, and succeeds.
        write(out, NEW, "fp-new", force=force)
        assert_final(out, NEW, "fp-new")
    # Every step that changes what a file holds or where it is must fail the build when it fails.
    # (Path.mkdir(exist_ok=True) rightly ignores a failure on a folder that exists.)
    assert not survived & {"write", "replace", "link", "fchmod", "chmod"}, survived
    # Only a failing cleanup (rmtree of the staging folder) may leave the staging folder behind.
    assert leftovers <= calls.count("unlink") + calls.count("rmdir") + calls.count("scandir") + calls.count("open")


def test_a_crash_at_any_step_is_never_reported_up_to_date_and_the_next_build_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "base"
    write(base, OLD, "fp-old")
    (base / ".env").chmod(0o600)
    frozen: list[Path] = []
    scratch = copy_tree(base, tmp_path / "live")

    def freeze(step: int, _name: str) -> None:
        frozen.append(copy_tree(scratch, tmp_path / f"crash-{step}"))

    with monkeypatch.context() as patch:
        Faults(on_step=freeze).install(patch)
        write(scratch, NEW, "fp-new")
    assert len(frozen) > 20
    for folder in frozen:
        contents = {name: (folder / name).read_text() if (folder / name).is_file() else None for name in NEW}
        all_new = contents == NEW
        # The fast path (manifest + hashes) only accepts a folder in one consistent state.
        assert recorded_files_match(folder, "fp-new") is None or all_new, folder
        assert recorded_files_match(folder, "fp-old") is None or _without_staging(photograph(folder)) == photograph(base), folder
        # The full comparison sees a mix for what it is.
        changes = survey(folder, NEW, SECRET_FILES).changes
        assert bool(changes) != all_new, folder
        # Recovery: rebuilding (with either inputs) never mistakes omnigen's own files for edits.
        retry_old = copy_tree(folder, folder.with_name(folder.name + "-old"))
        write(folder, NEW, "fp-new")
        assert_final(folder, NEW, "fp-new")
        write(retry_old, OLD, "fp-old")
        assert_final(retry_old, OLD, "fp-old")


def test_stale_staging_folder_from_a_crash_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    leftover = out / f"{STAGING_PREFIX}crashed"
    (leftover / "new").mkdir(parents=True)
    (leftover / "new" / ".env").write_text("secret\n")
    assert survey(out, OLD, SECRET_FILES).foreign == (), "staging folders are omnigen's own"
    write(out, NEW, "fp-new")
    assert not leftover.exists()


def test_filesystems_without_hard_links_still_get_safe_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On FAT or some network mounts link() fails with EPERM: copies take the place of links."""

    def no_links(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    out = tmp_path / "out"
    write(out, OLD, "fp-old")
    monkeypatch.setattr(os, "link", no_links)
    (out / ".env").write_text('POSTGRES_PASSWORD="edited"\n')
    report = write(out, NEW, "fp-new", force=True)
    assert report.backups == [".env.bak"]  # type: ignore[attr-defined]
    assert (out / ".env.bak").read_text() == 'POSTGRES_PASSWORD="edited"\n' and mode(out / ".env.bak") == 0o600
    assert_final(out, NEW, "fp-new")
    before = photograph(out)
    # and a failing move is still rolled back from the copies
    original_replace = os.replace
    moves = {"count": 0}

    def third_replace_fails(source: object, destination: object) -> None:
        moves["count"] += 1
        if moves["count"] == 3:
            raise OSError(errno.EIO, "injected failure of os.replace", str(destination))
        original_replace(source, destination)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", third_replace_fails)
    with pytest.raises(OutputError, match="injected failure"):
        write(out, OLD, "fp-old")
    assert _without_staging(photograph(out)) == before


def test_obsolete_path_replaced_by_a_symlink_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(out, NEW, "fp-new")
    target = tmp_path / "elsewhere.conf"
    target.write_text(NEW["asterisk/pjsip.conf"])
    (out / "asterisk" / "pjsip.conf").unlink()
    (out / "asterisk" / "pjsip.conf").symlink_to(target)
    smaller = {name: text for name, text in NEW.items() if name != "asterisk/pjsip.conf"}
    report = write(out, smaller, "fp-small")
    assert "asterisk/pjsip.conf" in report.foreign and report.removed == []  # type: ignore[attr-defined]
    assert os.path.islink(out / "asterisk" / "pjsip.conf") and target.exists()


# --------------------------------------------------------------------------- issue 18: big files, parent symlinks


def test_a_huge_sparse_output_file_is_classified_without_being_read(tmp_path: Path) -> None:
    """A 2 GB sparse file in place of an output: check and diff answer in bounded memory, build refuses to touch it."""
    import resource
    import subprocess
    import sys

    from tests.conftest import ROOT

    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    out = tmp_path / "out"
    assert subprocess.run([sys.executable, "-m", "omnigen", "build", str(profile), "-o", str(out)], capture_output=True, check=False).returncode == 0
    with open(out / "asterisk" / "rtp.conf", "r+b") as handle:
        handle.truncate(2 << 30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    for command in (["check"], ["diff"], ["build"], ["build", "--force"]):
        result = subprocess.run(
            [sys.executable, "-m", "omnigen", *command, str(profile), "-o", str(out)], capture_output=True, text=True, check=False, timeout=120, preexec_fn=limit
        )
        text = result.stdout + result.stderr
        assert result.returncode == (1 if command[0] in ("check", "diff") else 2), (command, text)
        assert "is 2147483648 bytes, far larger than anything omnigen writes" in text, (command, text)
    assert (out / "asterisk" / "rtp.conf").stat().st_size == 2 << 30  # never replaced, so nothing of it is lost


def test_read_regular_refuses_more_than_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 101)
    with pytest.raises(OutputError, match="is 101 bytes, far larger"):
        read_regular(path, limit=100)
    assert read_regular(path, limit=101) == b"x" * 101


def _symlinked_parent(tmp_path: Path, *, owner: int, holder_mode: int) -> Path:
    holder = tmp_path / "holder"
    holder.mkdir()
    (tmp_path / "real").mkdir()
    link = holder / "link"
    link.symlink_to(tmp_path / "real")
    os.lchown(link, owner, owner)
    os.chmod(holder, holder_mode)
    return link / "out"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a symlink to another user")
@pytest.mark.parametrize(
    ("owner", "holder_mode", "why"),
    [(65534, 0o755, "belongs to uid 65534"), (0, 0o777, "which others can change")],
    ids=["link-of-another-user", "link-in-a-folder-others-can-change"],
)
def test_a_parent_symlink_someone_else_controls_is_refused(tmp_path: Path, owner: int, holder_mode: int, why: str) -> None:
    out = _symlinked_parent(tmp_path, owner=owner, holder_mode=holder_mode)
    with pytest.raises(OutputError, match=f"is a symlink among the parents of the output folder and .*{why}.*pass the real path with -o"):
        write(out, OLD, "one")
    assert list((tmp_path / "real").iterdir()) == []


@pytest.mark.parametrize("holder_mode", [0o755, 0o1777], ids=["private-folder", "sticky-folder"])
def test_a_parent_symlink_of_your_own_is_followed(tmp_path: Path, holder_mode: int) -> None:
    out = _symlinked_parent(tmp_path, owner=os.geteuid(), holder_mode=holder_mode)
    write(out, OLD, "one")
    assert (tmp_path / "real" / "out" / "docker-compose.yml").read_text() == OLD["docker-compose.yml"]
def test_a_folder_another_build_created_after_the_survey_is_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Surveyed as absent, created by a concurrent build (another profile) before this one writes:
    writing from that survey would replace the other's files without a look. Refused instead."""
    out = tmp_path / "out"

    def other_build_meanwhile() -> None:
        write(out, OLD, "other")

    with pytest.raises(OutputError, match="another omnigen build created this folder meanwhile"):
        write_outputs(out, NEW, SECRET_FILES, manifest_for(NEW, "mine"), before_write=other_build_meanwhile)
    assert_final(out, OLD, "other")


def test_the_secrets_lock_serialises_builds_and_leaves_no_file(tmp_path: Path) -> None:
    import threading
    import time

    from omnigen.write.outputs import sidecar_lock, sidecar_lock_path

    sidecar = tmp_path / "site.secrets.toml"
    order: list[str] = []
    waited = threading.Event()

    def second() -> None:
        with sidecar_lock(sidecar, on_wait=waited.set):
            order.append("second")

    with sidecar_lock(sidecar):
        assert sidecar_lock_path(sidecar).exists()
        thread = threading.Thread(target=second)
        thread.start()
        assert waited.wait(timeout=30), "the second build did not wait"
        time.sleep(0.05)  # the second build is blocked on the lock, not merely slow
        order.append("first")
    thread.join(timeout=30)
    assert order == ["first", "second"]
    assert not sidecar_lock_path(sidecar).exists()
