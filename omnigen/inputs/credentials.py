"""Secrets: resolve missing ones once, then keep them forever.

A secret missing from the sidecar is generated (cryptographically random,
URL-safe alphabet, 32 characters) and written back, so it is never
regenerated: an upgrade or rebuild must not rotate a database password under a
running deployment.
"""

from __future__ import annotations

import secrets as random_source
from collections.abc import Callable

from omnigen.inputs.profile import SECRET_NAMES, Secrets

TOKEN_BYTES = 24  # 24 random bytes -> 32 URL-safe characters

TokenFactory = Callable[[str], str]


def random_token(_name: str) -> str:
    return random_source.token_urlsafe(TOKEN_BYTES)


def resolve(loaded: Secrets, token: TokenFactory = random_token) -> tuple[Secrets, tuple[str, ...]]:
    """Fill every missing secret; return the complete set and the names generated."""
    generated = {name: token(name) for name in SECRET_NAMES if getattr(loaded, name) is None}
    if not generated:
        return loaded, ()
    return loaded.model_copy(update=generated), tuple(generated)


def sidecar_text(existing: str | None, complete: Secrets, generated: tuple[str, ...]) -> str:
    """The sidecar with generated secrets appended; the user's own lines and comments are kept."""
    import tomlkit

    document = tomlkit.parse(existing) if existing else tomlkit.document()
    if not existing:
        document.add(tomlkit.comment("Secrets for this profile. Generated once by omnigen, never regenerated."))
        document.add(tomlkit.comment("Keep this file out of version control (mode 0600). Edit a value to set your own."))
    for name in generated:
        document[name] = getattr(complete, name)
    return tomlkit.dumps(document)
