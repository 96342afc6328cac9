"""A cheap fingerprint of everything a build depends on.

It covers the omnigen version, the profile bytes, the secrets sidecar bytes and
the OMNIGEN_* environment. `omnigen check` compares it with the manifest before
importing the validation and template stack: an unchanged fingerprint plus
unchanged files means the folder is up to date. Only hashlib and os here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from omnigen import __version__

ENV_PREFIX = "OMNIGEN_"


def fingerprint(profile_path: Path | None, profile_bytes: bytes, secrets_bytes: bytes | None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    digest = hashlib.sha256()
    digest.update(f"omnigen {__version__}\0".encode())
    digest.update(b"profile\0" + hashlib.sha256(profile_bytes).digest())
    digest.update(b"secrets\0" + (hashlib.sha256(secrets_bytes).digest() if secrets_bytes is not None else b"-"))
    for key in sorted(key for key in env if key.upper().startswith(ENV_PREFIX)):
        digest.update(f"env\0{key}\0{env[key]}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
