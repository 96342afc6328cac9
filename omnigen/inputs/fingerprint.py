"""A cheap fingerprint of everything a build depends on.

It covers the omnigen code (every module and template, so an upgrade or a local
change invalidates it even without a version bump), the profile bytes, the
secrets sidecar bytes and the OMNIGEN_* environment. `build` stores it in the
manifest; `omnigen check` compares it before importing the validation and
template stack: an unchanged fingerprint plus unchanged files means the folder
is up to date. Only stdlib imports here.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from omnigen import __version__
from omnigen.errors import InputFileError
from omnigen.inputs.inputfile import MAX_TOML_BYTES, read_input

ENV_PREFIX = "OMNIGEN_"
SECRETS_SUFFIX = ".secrets.toml"
_PACKAGE = Path(__file__).resolve().parent.parent


def sidecar_path(profile_path: Path) -> Path:
    """Where the secrets of a profile live: `acme.toml` -> `acme.secrets.toml` beside it.

    Defined here, in a stdlib-only module, so the fast path of `check` finds it
    without importing pydantic; `profile.secrets_path_for` is this function.
    """
    return profile_path.with_name(f"{profile_path.stem}{SECRETS_SUFFIX}")


OUTPUT_FOLDER = "out"


def output_path(profile_path: Path, project_name: str) -> Path:
    """Where a profile builds by default: `out/<project.name>/` beside the profile, like its sidecar.

    Never relative to the working folder: `cd elsewhere && omnigen build ../site/omnivoip.toml`
    must not leave a second copy of the credentials wherever it was run. Stdlib-only, like
    `sidecar_path`, so the fast path of `check` finds the folder without pydantic.
    """
    return profile_path.parent / OUTPUT_FOLDER / project_name


TLS_SUFFIX = ".tls"
TLS_CHAIN = "fullchain.pem"
TLS_KEY = "privkey.pem"


def tls_sidecar_dir(profile_path: Path) -> Path:
    """Where a generated certificate of a profile lives: `acme.toml` -> `acme.tls/` beside it (omnigen/inputs/tls.py)."""
    return profile_path.with_name(f"{profile_path.stem}{TLS_SUFFIX}")


def tls_source_bytes(profile_path: Path, profile_bytes: bytes, environ: Mapping[str, str]) -> bytes | None:
    """The bytes of the certificate and key a build copies into certs/, so a renewed file changes the fingerprint.

    tls.mode = "files" names them in the profile; otherwise they are the sidecar folder's. None when they
    cannot be told without the full validation (an override of a tls key in the environment, unreadable TOML).
    """
    import tomllib

    if overrides_table(environ, "tls"):
        return None
    try:
        tls = tomllib.loads(profile_bytes.decode("utf-8")).get("tls", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(tls, dict):
        return None
    if tls.get("mode") == "files":
        names = [tls.get("certificate"), tls.get("key")]
        if not all(isinstance(name, str) for name in names):
            return None
        paths = [profile_path.parent / str(name) for name in names]
    else:
        folder = tls_sidecar_dir(profile_path)
        paths = [folder / TLS_CHAIN, folder / TLS_KEY]
    try:
        return tls_digest(*(read_optional(path, what="certificate") for path in paths))
    except (OSError, InputFileError):
        return None  # the full path reports it


def tls_digest(*files: bytes | None) -> bytes:
    """One digest of the certificate chain and key bytes (None: the file is missing)."""
    digest = hashlib.sha256()
    for data in files:
        digest.update(b"-" if data is None else hashlib.sha256(data).digest())
    return digest.digest()


def _templates_dir() -> Path:
    packaged = _PACKAGE / "templates"
    return packaged if packaged.is_dir() else _PACKAGE.parent / "templates"


@functools.cache
def code_identity() -> str:
    """sha256 over the omnigen sources and templates that shape the output."""
    digest = hashlib.sha256(f"omnigen {__version__}\0".encode())
    sources = [(path.relative_to(_PACKAGE).as_posix(), path) for path in _PACKAGE.rglob("*.py")]
    templates = _templates_dir()
    sources += [("templates/" + path.relative_to(templates).as_posix(), path) for path in templates.rglob("*.j2")]
    for name, path in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables profile loading reads: OMNIGEN_*, the prefix in any case."""
    return {key: value for key, value in environ.items() if key.upper().startswith(ENV_PREFIX)}


def overrides_table(environ: Mapping[str, str], table: str) -> bool:
    """Whether a variable of the environment overrides a key of the profile's `table` (OMNIGEN_TLS__MODE: "tls")."""
    return any(key.upper().startswith(ENV_PREFIX + table.upper()) for key in environ)


def fingerprint(
    profile_bytes: bytes, secrets_bytes: bytes | None, environ: Mapping[str, str] | None = None, tls_bytes: bytes | None = None
) -> str:
    env = env_overrides(os.environ if environ is None else environ)
    digest = hashlib.sha256()
    digest.update(b"tls\0" + (tls_bytes if tls_bytes is not None else b"-"))
    digest.update(b"code\0" + code_identity().encode())
    digest.update(b"profile\0" + hashlib.sha256(profile_bytes).digest())
    digest.update(b"secrets\0" + (hashlib.sha256(secrets_bytes).digest() if secrets_bytes is not None else b"-"))
    for key in sorted(env):
        digest.update(f"env\0{key}\0{env[key]}\0".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def read_optional(path: Path, limit: int = MAX_TOML_BYTES, what: str = "profile") -> bytes | None:
    """The bytes of a profile or sidecar, or None when it does not exist (omnigen.inputs.inputfile: a FIFO
    or /dev/zero is refused with InputFileError rather than hanging or filling the memory)."""
    return read_input(path, limit=limit, what=what)
