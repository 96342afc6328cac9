"""The .env beside stack.yml: one encoding that `sh` and Docker Compose read as the same bytes.

`docker stack deploy` reads no .env file: it interpolates stack.yml from its own
environment. deploy-stack.sh therefore sources the .env with `set -a; . ./.env`,
while `omnigen lint` and Compose read the same file as a Compose .env. Single
quotes are literal in both (no `$`, backslash or backquote expansion), so
`KEY='value'` means the same to both, provided the value has no single quote,
no line break (the two disagree on multi-line values), no NUL, and does not end
in a backslash (Compose reads `\\'` as an escaped quote). Such values are refused.
"""

from __future__ import annotations

from omnigen.formats.dotenv import KEY_PATTERN, DotenvError


def unrepresentable(value: str) -> str | None:
    """Why `value` cannot be written single-quoted for both sh and Compose, or None."""
    for char, name in (("'", "a single quote (')"), ("\n", "a line break"), ("\r", "a carriage return"), ("\x00", "a NUL character")):
        if char in value:
            return f"it contains {name}"
    if value.endswith("\\"):
        return "it ends with a backslash"
    return None


def encode_value(value: str) -> str:
    if why := unrepresentable(value):
        raise DotenvError(f"cannot write this value single-quoted: {why}")
    return f"'{value}'"


def encode_line(key: str, value: str) -> str:
    if not KEY_PATTERN.match(key):
        raise DotenvError(f"invalid .env key {key!r}")
    return f"{key}={encode_value(value)}"
