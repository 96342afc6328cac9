"""Compose-style variable interpolation: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}, and `$$` for a literal `$`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>\{[^}]*\}?))"
)


@dataclass
class Interpolation:
    value: str
    missing: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)


def interpolate(text: str, env: Mapping[str, str]) -> Interpolation:
    result = Interpolation("")

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("invalid") is not None:
            result.invalid.append(match.group(0))
            return match.group(0)
        name = match.group("braced") or match.group("named")
        op = match.group("op")
        arg = match.group("arg") or ""
        result.used.append(name)
        present = name in env
        value = env.get(name, "")
        if op is None:
            if not present:
                result.missing.append(name)
            return value
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if present else arg
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if present else ""
        if (op == ":?" and not value) or (op == "?" and not present):
            result.missing.append(name)
        return value

    result.value = _TOKEN.sub(replace, text)
    return result
