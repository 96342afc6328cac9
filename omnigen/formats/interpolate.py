"""Compose-style variable interpolation: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}, nested defaults such as
${A:-${B}}, and `$$` for a literal `$`.

A `$` that starts no variable (`$1`, a trailing `$`) stays as it is, as in
Compose; a malformed `${...}` is an invalid template that Compose refuses, so
the reader records it instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


@dataclass
class Interpolation:
    value: str
    missing: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    # ${VAR:?message} / ${VAR?message} that fired: Compose stops with this message.
    required: dict[str, str] = field(default_factory=dict)


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start`, or -1."""
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("$$", index):
            index += 2
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def interpolate(text: str, env: Mapping[str, str]) -> Interpolation:
    result = Interpolation("")
    result.value = _expand(text, env, result)
    return result


def _expand(text: str, env: Mapping[str, str], result: Interpolation) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "$":
            out.append("$")
            index += 2
            continue
        if following == "{":
            end = _closing_brace(text, index + 2)
            if end < 0:
                result.invalid.append(text[index:])
                out.append(text[index:])
                break
            out.append(_braced(text[index + 2 : end], env, result, text[index : end + 1]))
            index = end + 1
            continue
        name = _NAME.match(text, index + 1)
        if name:
            variable = name.group(0)
            result.used.append(variable)
            if variable not in env:
                result.missing.append(variable)
            out.append(env.get(variable, ""))
            index = name.end()
            continue
        # Compose keeps a `$` that starts no variable (`$1`, `a$ b`, a trailing `$`) as is.
        out.append("$")
        index += 1
    return "".join(out)


def _braced(body: str, env: Mapping[str, str], result: Interpolation, whole: str) -> str:
    name_match = _NAME.match(body)
    if not name_match:
        result.invalid.append(whole)
        return whole
    name = name_match.group(0)
    rest = body[name_match.end() :]
    result.used.append(name)
    present = name in env
    value = env.get(name, "")
    if not rest:
        if not present:
            result.missing.append(name)
        return value
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        result.invalid.append(whole)
        return whole
    argument = rest[len(operator) :]
    set_and_nonempty = bool(value)
    if operator == ":-":
        return value if set_and_nonempty else _expand(argument, env, result)
    if operator == "-":
        return value if present else _expand(argument, env, result)
    if operator == ":+":
        return _expand(argument, env, result) if set_and_nonempty else ""
    if operator == "+":
        return _expand(argument, env, result) if present else ""
    if (operator == ":?" and not set_and_nonempty) or (operator == "?" and not present):
        result.missing.append(name)
        result.required[name] = _expand(argument, env, result)
    return value
