"""The pipeline end to end: profile -> plan -> render -> verify -> write.

`compile_profile` is pure (no disk, no clock, no randomness beyond the token
factory it is given); `build` adds loading and writing around it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omnigen.credentials import TokenFactory, random_token, resolve, sidecar_text
from omnigen.fingerprint import fingerprint
from omnigen.plan import SECRET_FILES, Plan, make_plan
from omnigen.profile import Profile, Secrets, load_profile, load_secrets, secrets_path_for
from omnigen.render import render
from omnigen.verify import verify
from omnigen.write import Manifest, WriteReport, sha256, write_file_atomic, write_outputs


@dataclass(frozen=True)
class Compiled:
    plan: Plan
    files: dict[str, str]
    secrets: Secrets
    generated: tuple[str, ...]


def compile_profile(profile: Profile, loaded_secrets: Secrets, token: TokenFactory = random_token) -> Compiled:
    complete, generated = resolve(loaded_secrets, token)
    plan = make_plan(profile, complete)
    files = render(plan)
    verify(plan, files)
    return Compiled(plan, files, complete, generated)


def packaged_profile(name: str = "lan-office") -> Path:
    packaged = Path(__file__).with_name("profiles") / f"{name}.toml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "profiles" / f"{name}.toml"


@dataclass(frozen=True)
class BuildInputs:
    profile_path: Path
    secrets_path: Path
    profile: Profile
    secrets: Secrets
    fingerprint_without_new_secrets: str


def default_out_dir(profile: Profile, out_root: Path | None = None) -> Path:
    return (out_root if out_root is not None else Path("out")) / profile.project.name


def secrets_location(profile_path: Path, out_dir: Path | None, packaged: bool) -> Path:
    """The sidecar sits beside the profile; the packaged default profile keeps it beside the output."""
    if packaged:
        base = out_dir.parent if out_dir is not None else Path("out")
        return base / f"{profile_path.stem}.secrets.toml"
    return secrets_path_for(profile_path)


@dataclass(frozen=True)
class BuildResult:
    compiled: Compiled
    out_dir: Path
    secrets_path: Path
    report: WriteReport


def build(
    profile_path: Path | None,
    out_dir: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    token: TokenFactory = random_token,
    force: bool = False,
    out_root: Path | None = None,
) -> BuildResult:
    env = dict(os.environ if environ is None else environ)
    packaged = profile_path is None
    path = packaged_profile() if profile_path is None else profile_path
    profile = load_profile(path, env)
    destination = out_dir if out_dir is not None else default_out_dir(profile, out_root)
    secrets_path = secrets_location(path, out_dir, packaged)
    loaded = load_secrets(secrets_path)
    compiled = compile_profile(profile, loaded, token)

    secrets_bytes = secrets_path.read_bytes() if secrets_path.exists() else None
    if compiled.generated:
        existing = secrets_bytes.decode("utf-8") if secrets_bytes is not None else None
        new_text = sidecar_text(existing, compiled.secrets, compiled.generated)
        write_file_atomic(secrets_path, new_text, 0o600)
        secrets_bytes = new_text.encode("utf-8")
    elif secrets_path.exists():
        os.chmod(secrets_path, 0o600)

    manifest = Manifest(
        version=compiled.plan.version,
        profile_hash=compiled.plan.profile_hash,
        fingerprint=fingerprint(path, path.read_bytes(), secrets_bytes, env),
        files={relative: sha256(text) for relative, text in compiled.files.items()},
    )
    report = write_outputs(destination, compiled.files, SECRET_FILES, manifest, force=force)
    return BuildResult(compiled, destination, secrets_path, report)
