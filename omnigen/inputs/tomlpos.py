"""Line numbers of keys in a TOML document, for error messages.

tomllib gives values, not positions; this scanner maps each key path
(`("capacity", "concurrent_calls")`) to the line it is written on. It follows
tables, arrays of tables (indexed) and dotted or quoted keys, and skips the
bodies of multi-line strings and arrays. Inline-table members map to the line
of the table itself.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from omnigen.errors import InputIssue, ProfileError

_BARE_OR_QUOTED = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEY = re.compile(rf"^\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")
_TABLE = re.compile(rf"^\s*\[\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*\]")
_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*\]\]")
_PART = re.compile(_BARE_OR_QUOTED)


def _split(dotted: str) -> tuple[str, ...]:
    parts = []
    for match in _PART.finditer(dotted):
        token = match.group(0)
        if token[0] in "\"'":
            token = token[1:-1]
        parts.append(token)
    return tuple(parts)


def _open_brackets(value: str) -> int:
    depth = 0
    quote: str | None = None
    escaped = False
    for char in value:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    positions: dict[tuple[str, ...], int] = {}
    array_counts: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    multiline_end: str | None = None
    bracket_depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if multiline_end:
            if multiline_end in line:
                multiline_end = None
            continue
        if bracket_depth > 0:
            bracket_depth += _open_brackets(line)
            continue
        if match := _ARRAY_TABLE.match(line):
            name = _split(match.group(1))
            index = array_counts.get(name, 0)
            array_counts[name] = index + 1
            table = (*name, str(index))
            positions.setdefault(name, number)
            positions[table] = number
            continue
        if match := _TABLE.match(line):
            table = _split(match.group(1))
            positions.setdefault(table, number)
            continue
        if match := _KEY.match(line):
            path = (*table, *_split(match.group(1)))
            positions[path] = number
            rest = line[match.end() :].strip()
            for fence in ('"""', "'''"):
                if rest.startswith(fence) and rest.count(fence) == 1:
                    multiline_end = fence
            if not multiline_end:
                bracket_depth = max(_open_brackets(rest), 0)
    return positions


# tomllib ends every message with the position; Python 3.14 also sets exc.lineno/colno,
# 3.11-3.13 only have the text.
_POSITION = re.compile(r" \(at line (\d+), column (\d+)\)$")
_REDECLARED = re.compile(r"^Cannot declare \((.*)\) twice$")
_TUPLE_PART = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def defined_on(text: str, line: int) -> tuple[str, ...] | None:
    """The key path a line defines, a key or a table header, as key_lines names it."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    defined = [path for path, number in key_lines("\n".join(lines[:line])).items() if number == line]
    if defined:
        return max(defined, key=len)
    header = _ARRAY_TABLE.match(lines[line - 1]) or _TABLE.match(lines[line - 1])
    return _split(header.group(1)) if header else None


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"' for part in path)


def parse_toml(text: str, file: str) -> dict[str, Any]:
    """tomllib.loads with every failure a ProfileError at `file:line:column`; the one TOML reader
    of profiles, secrets sidecars and migrated profiles."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([_syntax_issue(exc, text, file)]) from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ProfileError([InputIssue(file, "", "malformed TOML: arrays or tables nested too deeply")]) from None


def _syntax_issue(exc: tomllib.TOMLDecodeError, text: str, file: str) -> InputIssue:
    message = str(exc)
    line: int | None = getattr(exc, "lineno", None)
    column: int | None = getattr(exc, "colno", None)
    if position := _POSITION.search(message):
        message = message[: position.start()]
        line = line or int(position.group(1))
        column = column or int(position.group(2))
    message = getattr(exc, "msg", None) or message
    hint = "fix the TOML syntax"
    key = ""
    if line is not None and (redeclared := _REDECLARED.match(message)):
        # tomllib names the table as a Python tuple: ('project',)
        path = tuple(single or double for single, double in _TUPLE_PART.findall(redeclared.group(1)))
        key, hint = _dotted(path), "merge the two tables into one"
        # The first definition may be a header or dotted keys below it (`project.name = ...`).
        before = key_lines("\n".join(text.splitlines()[: line - 1]))
        first = min((number for found, number in before.items() if found[: len(path)] == path), default=None)
        message = f"the table [{key}] is declared twice" + (f" (first on line {first})" if first else "")
    elif line is not None and message == "Cannot overwrite a value" and (repeated := defined_on(text, line)):
        lines = text.splitlines()
        key, hint = _dotted(repeated), "keep one definition"
        # Point at the repeated key, not where tomllib noticed (after its value).
        column = len(lines[line - 1]) - len(lines[line - 1].lstrip()) + 1
        first = key_lines("\n".join(lines[: line - 1])).get(repeated)
        message = "the key is defined twice" + (f" (first on line {first})" if first else "")
    return InputIssue(file, key, f"malformed TOML: {message}", line=line, column=column, hint=hint)
