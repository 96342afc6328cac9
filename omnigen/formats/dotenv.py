"""Docker Compose `.env` files, encoded the way Compose reads them back.

Compose semantics (checked against the real binary): unquoted values are
trimmed and interpolated; double-quoted values know the escapes \\n \\r \\t \\\\ \\"
and interpolate `$` (`$$` is a literal `$`); single quotes are literal. The
encoder always double-quotes, so every byte except NUL survives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_ENCODE = {"\\": "\\\\", '"': '\\"', "$": "$$", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_DECODE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


class DotenvError(ValueError):
    pass


def encode_value(value: str) -> str:
    if "\x00" in value:
        raise DotenvError("a .env value cannot contain NUL")
    return '"' + "".join(_ENCODE.get(char, char) for char in value) + '"'


def encode_line(key: str, value: str) -> str:
    if not KEY_PATTERN.match(key):
        raise DotenvError(f"invalid .env key {key!r}")
    return f"{key}={encode_value(value)}"


@dataclass(frozen=True)
class EnvEntry:
    key: str
    raw: str
    value: str
    line: int
    quoted: str  # '"', "'" or "" (unquoted)
    end_line: int = 0  # last line of a multi-line quoted value (0: same as line)
    comment: str = ""  # text of a trailing `# comment` on the entry's last line


def decode_escapes(body: str) -> str:
    """A double-quoted body with its backslash escapes decoded but `$` left for interpolation."""
    return _decode_double(body, dollars=False)


def _decode_double(body: str, *, dollars: bool = True) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body) and body[index + 1] in _DECODE:
            out.append(_DECODE[body[index + 1]])
            index += 2
            continue
        if dollars and char == "$" and body.startswith("$$", index):
            out.append("$")
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _find_closing(text: str, start: int, quote: str) -> int:
    index = start
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return -1


def parse(text: str) -> list[EnvEntry]:
    """Parse a .env file into entries with their line numbers.

    Values are decoded (escapes, `$$`) but not interpolated: a `${OTHER}` stays
    as text, so lint can report references to undefined variables.
    """
    entries: list[EnvEntry] = []
    # Compose (compose-go's dotenv) skips a UTF-8 byte order mark, as Windows editors write one.
    lines = text.removeprefix("\ufeff").split("\n")
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, rest = stripped.partition("=")
        key = key.strip()
        if not sep or not KEY_PATTERN.match(key):
            raise DotenvError(f"line {number}: not a KEY=value line")
        rest = rest.lstrip()
        start_line = number
        if rest[:1] in {'"', "'"}:
            quote = rest[0]
            body = rest[1:]
            end = _find_closing(body, 0, quote)
            while end < 0 and number < len(lines):
                body += "\n" + lines[number]
                number += 1
                end = _find_closing(body, 0, quote)
            if end < 0:
                raise DotenvError(f"line {start_line}: unterminated {quote} quote")
            raw = body[:end]
            value = _decode_double(raw) if quote == '"' else raw
            trailing = body[end + 1 :].strip()
            comment = trailing[1:].strip() if trailing.startswith("#") else ""
            entries.append(EnvEntry(key, raw, value, start_line, quote, number, comment))
        else:
            # An unquoted value ends at whitespace followed by `#` (Compose's inline comment).
            marker = re.search(r"(^|\s+)#", rest)
            raw = (rest[: marker.start()] if marker else rest).strip()
            comment = rest[marker.end() :] if marker else ""
            value = raw.replace("$$", "$")
            entries.append(EnvEntry(key, raw, value, start_line, "", start_line, comment.strip()))
    return entries


def comment_lines(text: str, entries: list[EnvEntry]) -> list[tuple[int, str]]:
    """(line, text) of every comment: whole `#` lines outside values, and trailing comments."""
    inside: set[int] = set()
    for entry in entries:
        inside.update(range(entry.line, max(entry.line, entry.end_line) + 1))
    found = [(entry.end_line or entry.line, entry.comment) for entry in entries if entry.comment]
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if number not in inside and stripped.startswith("#"):
            found.append((number, stripped[1:].strip()))
    return sorted(found)


def as_dict(entries: list[EnvEntry]) -> dict[str, str]:
    return {entry.key: entry.value for entry in entries}
