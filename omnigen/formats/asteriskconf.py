"""Asterisk .conf files: writing values safely and reading them back with lines.

Asterisk's config parser treats `;` as a comment, `[` at line start as a
section, `#include`/`#exec`/`#tryinclude` as directives, and a newline as the
end of a value. A value that contains any of them could add configuration, so
the writer refuses such values instead of escaping them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_UNSAFE = re.compile(r"[\x00-\x1f\x7f;\[\]]|^\s*#|^\s|\s$")


class ConfValueError(ValueError):
    pass


def conf_value(value: object) -> str:
    text = str(value)
    if _UNSAFE.search(text) or "=>" in text:
        raise ConfValueError(f"value {text!r} cannot be written to an Asterisk config safely")
    return text


@dataclass
class ConfSetting:
    key: str
    value: str
    line: int


@dataclass
class ConfSection:
    name: str
    line: int
    template: bool
    inherits: tuple[str, ...]
    settings: list[ConfSetting] = field(default_factory=list)

    def get(self, key: str) -> ConfSetting | None:
        for setting in self.settings:
            if setting.key == key:
                return setting
        return None

    def get_all(self, key: str) -> list[ConfSetting]:
        return [setting for setting in self.settings if setting.key == key]


@dataclass
class ConfFile:
    sections: list[ConfSection]
    directives: list[tuple[int, str]]
    preamble: list[ConfSetting]

    def section(self, name: str) -> ConfSection | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None


_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<opts>[^)]*)\))?\s*$")


def _strip_comment(line: str) -> str:
    out = []
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line) and line[index + 1] == ";":
            out.append(";")
            index += 2
            continue
        if char == ";":
            break
        out.append(char)
        index += 1
    return "".join(out).strip()


def parse_conf(text: str, *, separator: str = "=") -> ConfFile:
    """Parse Asterisk (`key=value`) or rtpengine (`key = value`, `#` comments) files."""
    sections: list[ConfSection] = []
    directives: list[tuple[int, str]] = []
    preamble: list[ConfSetting] = []
    current: ConfSection | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            word = stripped.split(None, 1)[0].lower()
            if word in {"#include", "#tryinclude", "#exec"}:
                directives.append((number, stripped))
            continue
        line = _strip_comment(raw)
        if not line:
            continue
        if match := _SECTION.match(line):
            opts = [opt.strip() for opt in (match.group("opts") or "").split(",") if opt.strip()]
            current = ConfSection(
                name=match.group("name").strip(),
                line=number,
                template="!" in opts,
                inherits=tuple(opt for opt in opts if opt not in {"!", "+"}),
            )
            sections.append(current)
            continue
        key, sep, value = line.partition(separator)
        if not sep:
            continue
        key = key.strip().rstrip(">").strip()
        setting = ConfSetting(key, value.strip().lstrip(">").strip(), number)
        if current is None:
            preamble.append(setting)
        else:
            current.settings.append(setting)
    return ConfFile(sections, directives, preamble)
