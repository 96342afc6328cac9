"""The pipeline end to end: profile -> plan -> render -> verify -> write.

`compile_profile` is pure (no disk, no clock, no randomness beyond the token
factory it is given); `build` adds loading and writing around it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from omnigen.catalog.application import ASTERISK_GID, ASTERISK_UID
from omnigen.catalog.services import NGINX_GID, NGINX_UID
from omnigen.errors import InputIssue, OutputError, ProfileError
from omnigen.inputs.credentials import TokenFactory, random_token, resolve, sidecar_text
from omnigen.inputs.fingerprint import (
    OUTPUT_FOLDER,
    SECRETS_SUFFIX,
    TLS_CHAIN,
    TLS_KEY,
    fingerprint,
    output_path,
    overrides_table,
    read_optional,
    tls_digest,
    tls_sidecar_dir,
)
from omnigen.inputs.profile import Profile, Secrets, load_secrets, secrets_path_for
from omnigen.inputs.tls import Clock, TlsMaterial, load_tls, utc_now
from omnigen.loading import Loaded, load
from omnigen.plan.feasibility import Layout
from omnigen.plan.make import make_plan
from omnigen.plan.plan import ASTERISK_SECRET_FILES, Plan
from omnigen.render import render
from omnigen.verify import verify
from omnigen.write.outputs import (
    SECRET_MODE,
    FileRecord,
    Manifest,
    WriteReport,
    hand_over,
    loose_mode,
    sha256,
    sidecar_lock,
    write_file_atomic,
    write_outputs,
)


@dataclass(frozen=True)
class Compiled:
    plan: Plan
    files: dict[str, str]
    secrets: Secrets
    generated: tuple[str, ...]


def _check_stack_secrets(profile: Profile, loaded: Secrets, secrets_path: Path) -> None:
    # Single-host builds never load the multi-host modules: they are most of a cold start's own time.
    if profile.hosts:
        from omnigen.plan.cluster import check_stack_secrets

        check_stack_secrets(profile, loaded, str(secrets_path))


def compile_profile(
    profile: Profile,
    loaded_secrets: Secrets,
    token: TokenFactory = random_token,
    tls: TlsMaterial | None = None,
    checkout: str | None = None,
    layout: Layout | None = None,
) -> Compiled:
    """Plan, render and verify; with `tls`, the outputs include the certificate pair nginx serves.
    `checkout`: build.source as the output folder sees it (see checkout_from_output). `layout` is the
    one the loader checked (loading.Loaded); without it the plan lays the ports out."""
    complete, generated = resolve(loaded_secrets, token)
    plan = make_plan(profile, complete, layout, checkout)
    files = render(plan)
    verify(plan, files)
    if tls is not None:
        files |= certificate_files(plan, tls)
    return Compiled(plan, files, complete, generated)


def certificate_files(plan: Plan, tls: TlsMaterial) -> dict[str, str]:
    """certs/fullchain.pem and certs/privkey.pem wherever nginx runs: the output folder, and the edge bundle with [[hosts]]."""
    files = {}
    folders = [("", plan)] if plan.runs("nginx") else []
    folders += [(f"{folder}/", part) for folder, part in plan.bundles if part.runs("nginx")]
    for prefix, part in folders:
        files[prefix + part.tls.chain_output] = tls.chain_pem
        files[prefix + part.tls.key_output] = tls.key_pem
    return files


def packaged_profile(name: str = "lan-office") -> Path:
    packaged = Path(__file__).with_name("profiles") / f"{name}.toml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "profiles" / f"{name}.toml"


def default_out_dir(profile_path: Path | None, profile: Profile, out_root: Path | None = None) -> Path:
    """`out_root/<project.name>` for a batch with -o; else `out/<project.name>` beside the profile.

    The packaged default profile (`omnigen build` without one) has no folder of the user's:
    it builds into ./out/, which is what asking for a demo in the current folder means.
    """
    if out_root is not None:
        return out_root / profile.project.name
    if profile_path is None:
        return Path(OUTPUT_FOLDER) / profile.project.name
    return output_path(profile_path, profile.project.name)


def output_dir(profile_path: Path | None, profile: Profile, out_dir: Path | None, out_root: Path | None = None) -> Path:
    """Where `build` writes: `-o` for one profile, else the default folder (under `out_root` in a batch)."""
    return out_dir if out_dir is not None else default_out_dir(profile_path, profile, out_root)


def tls_profile_path(profile_path: Path, out_dir: Path | None, packaged: bool) -> Path:
    """The path whose `<stem>.tls/` holds the generated certificate: beside the profile, or beside the
    output for the packaged default profile (as its secrets are)."""
    return secrets_location(profile_path, out_dir, packaged).with_name(profile_path.name) if packaged else profile_path


def _tls_fingerprint(tls: TlsMaterial, env: Mapping[str, str]) -> bytes | None:
    """What fingerprint.tls_source_bytes reads back from disk for this pair (None when an override hides it)."""
    if overrides_table(env, "tls"):
        return None
    return tls_digest(tls.chain_pem.encode("ascii"), tls.key_pem.encode("ascii"))


def secrets_location(profile_path: Path, out_dir: Path | None, packaged: bool) -> Path:
    """The sidecar sits beside the profile; the packaged default profile keeps it beside the output."""
    if packaged:
        base = out_dir.parent if out_dir is not None else Path(OUTPUT_FOLDER)
        return base / f"{profile_path.stem}{SECRETS_SUFFIX}"
    return secrets_path_for(profile_path)


def check_build_contexts(profile: Profile, profile_path: Path, out_dir: Path) -> None:
    """Build contexts resolved against the real output folder: never it or one of its parents, never past `/`.

    The profile model already refuses contexts that are only `..`; how far `../..` reaches
    depends on where the output goes, so it is checked once that is known.
    """
    base = Path(os.path.abspath(out_dir))
    issues = []
    for name, context in profile.build.model_dump().items():
        # build.source is relative to the profile and only its components/ folders are sent (require_build_contexts).
        if name == "source" or not isinstance(context, str):
            continue
        ups = len([part for part in context.split("/") if part == ".."])
        resolved = Path(os.path.normpath(base / context))
        if ups >= len(base.parts):
            problem = f"climbs {ups} folders up from {base}, past /"
        elif resolved == base or resolved in base.parents:
            problem = f"resolves to {resolved}, which holds the output folder {base}: Docker would send its .env and secrets to the build"
        else:
            continue
        issues.append(InputIssue(str(profile_path), f"build.{name}", problem, got=repr(context), hint="name the image's source folder, relative to the output folder"))
    if issues:
        raise ProfileError(issues)


def checkout_from_output(profile: Profile, profile_path: Path, out_dir: Path, packaged: bool = False) -> str:
    """build.source (relative to the profile, or to the working folder for the packaged default profile)
    as a path relative to the output folder, which is where Compose resolves build contexts from."""
    source = Path(profile.build.source)
    if not source.is_absolute():
        source = (Path.cwd() if packaged else profile_path.parent) / source
    return Path(os.path.relpath(os.path.abspath(source), os.path.abspath(out_dir))).as_posix()


def require_build_contexts(plan: Plan, out_dir: Path, profile_path: Path, profile_text: str) -> None:
    """Every image the compose files build has its Dockerfile where they say (exit 2 otherwise, naming each path)."""
    from omnigen.errors import InputIssue, ProfileError
    from omnigen.inputs.tomlpos import key_lines

    folders = [(out_dir, plan), *((out_dir / folder, part) for folder, part in plan.bundles)]
    missing: dict[str, list[str]] = {}
    for base, part in folders:
        for key, image in part.images.items():
            if image.build is None:
                continue
            # Lexically, as Compose joins them: the output folder may not exist yet.
            context = os.path.normpath(base / image.build)
            if not os.path.isfile(os.path.join(context, "Dockerfile")):
                missing.setdefault(context, []).append(key)
    if not missing:
        return
    lines = key_lines(profile_text)
    by_setting: dict[str, list[str]] = {}
    for folder, keys in sorted(missing.items()):
        overridden = [key for key in keys if plan.images[key].origin == "override"] if keys[0] in plan.images else []
        setting = f"build.{overridden[0]}" if overridden else "build.source"
        by_setting.setdefault(setting, []).append(f"{folder} (images.{', images.'.join(sorted(set(keys)))})")
    issues = [
        InputIssue(
            str(profile_path),
            setting,
            "no Dockerfile in the build context" + ("s " if len(folders_missing) > 1 else " ") + "; ".join(folders_missing),
            line=lines.get(tuple(setting.split("."))) or lines.get(("build",)),
            hint=(
                "check out the OmniVoIP repository (github.com/henry0295/omnivoip) there or point build.source at your checkout; "
                "set build.prebuilt = true to pull the images.* tags instead"
            ),
        )
        for setting, folders_missing in by_setting.items()
    ]
    raise ProfileError(issues)


@dataclass(frozen=True)
class BuildResult:
    compiled: Compiled
    out_dir: Path
    secrets_path: Path
    report: WriteReport
    sidecar_made_private: bool = False  # a loosened sidecar was set back to 0600
    tls: TlsMaterial | None = None
    # Why the key or the ACME folder could not be given to nginx's user (a warning: the outputs are complete).
    handover_problem: str | None = None


def _manifest(compiled: Compiled, fingerprint_value: str) -> Manifest:
    return Manifest(
        version=compiled.plan.version,
        profile_hash=compiled.plan.profile_hash,
        fingerprint=fingerprint_value,
        files={relative: FileRecord(sha256(text), relative in compiled.plan.secret_files) for relative, text in compiled.files.items()},
    )


def _keep_sidecar_private(path: Path) -> bool:
    """The sidecar stays 0600 even if someone loosened it; True when its mode had to be fixed."""
    if loose_mode(path) is None:
        return False
    os.chmod(path, SECRET_MODE)
    return True


def _read_bytes(path: Path, what: str) -> bytes | None:
    """Bytes of a profile or sidecar that loading already accepted (bounded: it may have been swapped since)."""
    try:
        return read_optional(path, what=what)
    except OSError as exc:
        raise OutputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def _profile_bytes(path: Path) -> bytes:
    data = _read_bytes(path, "profile")
    if data is None:
        raise OutputError(f"{path}: the profile disappeared while building; nothing was written")
    return data


def _restore_sidecar(secrets_path: Path, previous: bytes | None) -> None:
    """Take back the secrets of a build that failed and undid its writes: no output holds them,
    and no other build has read them (the sidecar is locked). Best effort: kept secrets are
    merely unused, the next build deploys them."""
    try:
        if previous is None:
            os.unlink(secrets_path)
        else:
            write_file_atomic(secrets_path, previous.decode("utf-8"), SECRET_MODE)
    except (OSError, OutputError, UnicodeDecodeError):
        pass


def build(
    profile_path: Path | None,
    out_dir: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    token: TokenFactory = random_token,
    force: bool = False,
    out_root: Path | None = None,
    on_wait: Callable[[], None] | None = None,
    loaded_profile: Loaded | None = None,
    clock: Clock = utc_now,
) -> BuildResult:
    """Load, compile, then write; the order is what makes it safe.

    0. The profile's secrets lock is held from before the sidecar is read until
       the outputs are written: two builds of one profile never both generate
       secrets, and what one build deploys is what the sidecar holds.
    1. Everything that can fail on bad input (profile, sidecar, verify) runs in
       memory before the disk is touched.
    2. `write_outputs` refuses unsafe or edited output folders before anything is
       written, then calls back to write the sidecar: new secrets reach the disk
       only when the build is going ahead, and always before any output that
       contains them, so a crash later never loses a deployed secret (the next
       build reuses it instead of generating another). A write that fails and
       undoes itself takes the new secrets back out of the sidecar.
    3. The outputs are written all or nothing.
    """
    env = dict(os.environ if environ is None else environ)
    packaged = profile_path is None
    path = packaged_profile() if profile_path is None else profile_path
    # A batch loads every profile first (to refuse two that share a folder) and passes it on.
    checked = loaded_profile if loaded_profile is not None else load(path, env)
    profile = checked.profile
    destination = output_dir(profile_path, profile, out_dir, out_root)
    check_build_contexts(profile, path, destination)
    secrets_path = secrets_location(path, out_dir, packaged)
    with sidecar_lock(secrets_path, on_wait):
        loaded = load_secrets(secrets_path)
        _check_stack_secrets(profile, loaded, secrets_path)
        tls_path = tls_profile_path(path, out_dir, packaged)
        tls = load_tls(profile, tls_path, clock())
        compiled = compile_profile(profile, loaded, token, tls, checkout_from_output(profile, path, destination, packaged), checked.layout)
        require_build_contexts(compiled.plan, destination, path, path.read_text(encoding="utf-8"))

        existing_sidecar = _read_bytes(secrets_path, "secrets sidecar")
        new_sidecar: str | None = None
        if compiled.generated:
            existing_text = existing_sidecar.decode("utf-8") if existing_sidecar is not None else None
            new_sidecar = sidecar_text(existing_text, compiled.secrets, compiled.generated)
        sidecar_bytes = new_sidecar.encode("utf-8") if new_sidecar is not None else existing_sidecar
        sidecar_fixed: list[Path] = []
        sidecar_written = False
        tls_sidecar_new: list[bool] = []  # [True] once this build started creating <stem>.tls/

        def write_sidecar() -> None:
            nonlocal sidecar_written
            try:
                if new_sidecar is not None:
                    write_file_atomic(secrets_path, new_sidecar, SECRET_MODE)
                    sidecar_written = True
                elif existing_sidecar is not None and _keep_sidecar_private(secrets_path):
                    sidecar_fixed.append(secrets_path)
            except OSError as exc:  # write_file_atomic reports its own failures as OutputError
                raise OutputError(f"{secrets_path}: cannot make the secrets sidecar private ({exc.strerror or exc})") from None
            if tls.generated:
                tls_sidecar_new.append(not tls_sidecar_dir(tls_path).exists())
                write_tls_sidecar(tls_path, tls)

        manifest = _manifest(compiled, fingerprint(_profile_bytes(path), sidecar_bytes, env, _tls_fingerprint(tls, env)))
        try:
            report = write_outputs(destination, compiled.files, compiled.plan.secret_files, manifest, force=force, before_write=write_sidecar)
        except OutputError as error:
            if sidecar_written and not error.folder_changed:
                _restore_sidecar(secrets_path, existing_sidecar)
            if tls_sidecar_new == [True] and not error.folder_changed:
                _remove_tls_sidecar(tls_path)
            raise
    problems = [problem for problem in (_hand_to_nginx(destination, compiled.plan), _hand_to_asterisk(destination, compiled.plan)) if problem]
    problem = "; ".join(problems) or None
    return BuildResult(compiled, destination, secrets_path, report, sidecar_made_private=bool(sidecar_fixed), tls=tls, handover_problem=problem)


def _remove_tls_sidecar(tls_path: Path) -> None:
    """A first build that failed takes back the certificate folder it created, as it takes back new secrets."""
    folder = tls_sidecar_dir(tls_path)
    for name in (TLS_KEY, TLS_CHAIN):
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _hand_to_nginx(destination: Path, plan: Plan) -> str | None:
    """nginx runs as NGINX_UID in its container and reads the key through a bind mount, so the key (0600)
    must be that user's; the ACME client's folder too. Only root can give files away: other builds leave
    them to the operator (docs/tls.md: `sudo chown 101:101 certs/privkey.pem`)."""
    if os.geteuid() != 0:
        return None
    keys = [plan.tls.key_output] if plan.runs("nginx") else []
    keys += [f"{folder}/{part.tls.key_output}" for folder, part in plan.bundles if part.runs("nginx")]
    folders = [plan.tls.acme.host_dir] if plan.tls.acme else []
    return hand_over(destination, keys, folders, NGINX_UID, NGINX_GID, "nginx")


def _hand_to_asterisk(destination: Path, plan: Plan) -> str | None:
    """Asterisk runs as the image's asterisk user and reads manager.conf and ari.conf (0600, they hold the
    AMI and ARI secrets) through bind mounts: without this its AMI and ARI stay off. As for nginx's key, only
    root can give them away; docs/application.md says what to run otherwise."""
    if os.geteuid() != 0:
        return None
    files = [name for name in ASTERISK_SECRET_FILES if plan.cluster is None and plan.runs("asterisk")]
    files += [f"{folder}/{name}" for folder, part in plan.bundles if part.runs("asterisk") for name in ASTERISK_SECRET_FILES]
    return hand_over(destination, files, (), ASTERISK_UID, ASTERISK_GID, "asterisk")


@dataclass(frozen=True)
class Expected:
    """What `build` would write, computed without writing anything (for check and diff)."""

    compiled: Compiled
    out_dir: Path
    secrets_path: Path
    missing_secrets: tuple[str, ...]


def expected_outputs(profile_path: Path, out_dir: Path | None, *, environ: Mapping[str, str] | None = None) -> Expected:
    """Compile in memory. Missing secrets get throw-away values that never leave this process:
    a folder built without them cannot be up to date, whatever they would be."""
    env = dict(os.environ if environ is None else environ)
    checked = load(profile_path, env)
    profile = checked.profile
    destination = output_dir(profile_path, profile, out_dir)
    check_build_contexts(profile, profile_path, destination)
    secrets_path = secrets_path_for(profile_path)
    loaded = load_secrets(secrets_path)
    _check_stack_secrets(profile, loaded, secrets_path)
    tls = load_tls(profile, profile_path, utc_now(), generate=False)
    compiled = compile_profile(profile, loaded, random_token, tls, checkout_from_output(profile, profile_path, destination), checked.layout)
    return Expected(compiled, destination, secrets_path, compiled.generated)


def write_tls_sidecar(profile_path: Path, material: TlsMaterial) -> None:
    """Keep a generated certificate beside the profile: folder 0700, key 0600, certificate 0644."""
    folder = tls_sidecar_dir(profile_path)
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder for the generated certificate ({exc.strerror or exc})") from None
    write_file_atomic(folder / TLS_KEY, material.key_pem, SECRET_MODE)
    write_file_atomic(folder / TLS_CHAIN, material.chain_pem, 0o644)
