"""Asterisk .conf files (and rtpengine's GLib key files): writing values safely and
reading them back with lines.

Asterisk's config parser treats `;` as a comment, `[` at line start as a
section, `#include`/`#exec`/`#tryinclude` as directives, and a newline as the
end of a value. A value that contains any of them could add configuration, so
the writer refuses such values instead of escaping them.

rtpengine reads a GLib key file instead: only whole lines starting with `#` are
comments and `;` is data (`interfaces = a;b` lists two interfaces), so it is
parsed with the "keyfile" dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# \x85, U+2028 and U+2029 end a line for Python's splitlines (our verify parser),
# though not for Asterisk: refused so both always see the same lines. A leading
# `>` would turn `key=>value` into Asterisk's object syntax `key => value`.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029;\[\]]|^\s*#|^\s|\s$|^>")

Dialect = Literal["asterisk", "keyfile"]


class ConfValueError(ValueError):
    pass


def conf_value(value: object) -> str:
    text = str(value)
    if _UNSAFE.search(text) or "=>" in text:
        raise ConfValueError(f"value {text!r} cannot be written to an Asterisk config safely")
    return text


# What Asterisk cannot read back from a value at all: line breaks and other controls, spaces it trims
# at either end, and a leading `>` (object syntax). Everything else survives once `;` is escaped.
_UNREADABLE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]|^\s|\s$|^>")


def conf_secret(value: object) -> str:
    """A secret as an Asterisk value: `;` escaped as `\\;` (config.c reads it back as `;`), the rest verbatim."""
    text = str(value)
    if not text or _UNREADABLE.search(text):
        raise ConfValueError("a secret with control characters, spaces at either end or a leading '>' cannot be written to an Asterisk config")
    return text.replace(";", "\\;")


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
        """The effective (last) setting of a single-valued key in this section."""
        found = None
        for setting in self.settings:
            if setting.key == key:
                found = setting
        return found

    def get_all(self, key: str) -> list[ConfSetting]:
        return [setting for setting in self.settings if setting.key == key]


@dataclass
class ConfFile:
    sections: list[ConfSection]
    directives: list[tuple[int, str]]
    preamble: list[ConfSetting]
    comments: list[tuple[int, str]] = field(default_factory=list)

    def section(self, name: str) -> ConfSection | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None

    def templates(self, name: str) -> list[ConfSection]:
        return [section for section in self.sections if section.name == name and section.template]

    def effective(self, section: ConfSection) -> ConfSection:
        """The section with the settings of the templates it inherits from (Asterisk's `[name](template)`).

        Inherited settings come first, so the section's own settings win in `get`.
        """
        inherited: list[ConfSetting] = []
        seen: set[str] = set()

        def collect(names: tuple[str, ...]) -> None:
            for name in names:
                if name in seen:
                    continue
                seen.add(name)
                for template in self.templates(name):
                    collect(template.inherits)
                    inherited.extend(template.settings)

        collect(section.inherits)
        return ConfSection(section.name, section.line, section.template, section.inherits, inherited + section.settings)


_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<opts>[^)]*)\))?\s*$")


def _strip_comment(line: str) -> tuple[str, str]:
    """(content, comment) of an Asterisk line; `\\;` is a literal semicolon."""
    out = []
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line) and line[index + 1] == ";":
            out.append(";")
            index += 2
            continue
        if char == ";":
            return "".join(out).strip(), line[index + 1 :].strip()
        out.append(char)
        index += 1
    return "".join(out).strip(), ""


def parse_conf(text: str, *, dialect: Dialect = "asterisk") -> ConfFile:
    """Parse Asterisk (`key=value`, `;` comments) or rtpengine (`key = value`, `#` comment lines) files."""
    sections: list[ConfSection] = []
    directives: list[tuple[int, str]] = []
    preamble: list[ConfSetting] = []
    comments: list[tuple[int, str]] = []
    current: ConfSection | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            word = stripped.split(None, 1)[0].lower()
            if dialect == "asterisk" and word in {"#include", "#tryinclude", "#exec"}:
                directives.append((number, stripped))
            else:
                comments.append((number, stripped[1:].strip()))
            continue
        if dialect == "asterisk":
            line, comment = _strip_comment(raw)
            if comment:
                comments.append((number, comment))
        else:
            line = stripped
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
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip().rstrip(">").strip()
        setting = ConfSetting(key, value.strip().lstrip(">").strip(), number)
        if current is None:
            preamble.append(setting)
        else:
            current.settings.append(setting)
    return ConfFile(sections, directives, preamble, comments)
