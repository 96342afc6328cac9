"""Kamailio's native kamailio.cfg and dispatcher.list: safe values out, the
settings the edge rules check back in (with line numbers).

Only what the rules need is read: `listen`/`alias` core parameters,
`loadmodule`, `modparam` and `#!define`/`#!subst` preprocessor definitions
(a `modparam` value may name a define). Route blocks are not interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# IPs, ports, host names, SIP URIs, rtpengine flags: nothing that could close a
# string, start a comment or a preprocessor directive, or add a statement.
_SAFE = re.compile(r"^[A-Za-z0-9._:/@=!+-]+$")


class KamailioValueError(ValueError):
    pass


def cfg_value(value: object) -> str:
    """A value printed bare or inside double quotes in kamailio.cfg or dispatcher.list."""
    text = str(value)
    if not _SAFE.match(text):
        raise KamailioValueError(f"value {text!r} cannot be written to kamailio.cfg safely")
    return text


@dataclass(frozen=True)
class Listen:
    proto: str
    address: str
    port: int | None
    advertise_address: str | None
    advertise_port: int | None
    line: int


@dataclass(frozen=True)
class ModParam:
    module: str
    name: str
    value: str  # with quotes removed and a #!define name replaced by its value
    line: int


@dataclass(frozen=True)
class KamailioCfg:
    listens: tuple[Listen, ...]
    aliases: tuple[tuple[str, int], ...]
    modules: tuple[tuple[str, int], ...]
    modparams: tuple[ModParam, ...]
    defines: dict[str, str]
    text: str

    def modparam(self, module: str, name: str) -> ModParam | None:
        for param in self.modparams:
            if param.module == module and param.name == name:
                return param
        return None

    def has_module(self, module: str) -> bool:
        return any(name.removesuffix(".so") == module for name, _ in self.modules)

    def lines_with(self, pattern: re.Pattern[str]) -> list[tuple[int, re.Match[str]]]:
        found = []
        for number, line in enumerate(self.text.splitlines(), start=1):
            code = _strip_comment(line)
            found += [(number, match) for match in pattern.finditer(code)]
        return found


_LISTEN = re.compile(
    r"^\s*listen\s*=\s*(?:(?P<proto>udp|tcp|tls|sctp|ws|wss):)?(?P<address>\[[^\]]+\]|[^:\s]+)(?::(?P<port>\d+))?"
    r"(?:\s+advertise\s+(?P<adv>\[[^\]]+\]|[^:\s]+)(?::(?P<advport>\d+))?)?",
    re.I,
)
_ALIAS = re.compile(r'^\s*alias\s*=\s*"?(?P<alias>[^"\s]+)"?')
_LOADMODULE = re.compile(r'^\s*loadmodule\s+"(?P<name>[^"]+)"')
_MODPARAM = re.compile(r'^\s*modparam\s*\(\s*"(?P<module>[^"]+)"\s*,\s*"(?P<name>[^"]+)"\s*,\s*(?P<value>"[^"]*"|[^)\s]+)\s*\)')
_DEFINE = re.compile(r'^\s*#!(?:define|trydef|redefine)\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\s+(?P<value>.*?))?\s*$')


def _strip_comment(line: str) -> str:
    """Drop a `#` comment (not a `#!` directive) and `//` comments outside strings."""
    if line.lstrip().startswith("#!"):
        return line
    out = []
    quoted = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == '"':
            quoted = not quoted
        elif not quoted and (char == "#" or line.startswith("//", index)):
            break
        out.append(char)
        index += 1
    return "".join(out)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_kamailio_cfg(text: str) -> KamailioCfg:
    listens: list[Listen] = []
    aliases: list[tuple[str, int]] = []
    modules: list[tuple[str, int]] = []
    raw_params: list[tuple[str, str, str, int]] = []
    defines: dict[str, str] = {}
    in_block_comment = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_block_comment:
            if "*/" not in line:
                continue
            line = line.split("*/", 1)[1]
            in_block_comment = False
        while "/*" in line and not line.lstrip().startswith("#!"):
            before, _, after = line.partition("/*")
            if "*/" in after:
                line = before + after.split("*/", 1)[1]
            else:
                line = before
                in_block_comment = True
        if match := _DEFINE.match(line):
            defines[match.group("name")] = _unquote((match.group("value") or "").strip())
            continue
        code = _strip_comment(line)
        if match := _LISTEN.match(code):
            listens.append(
                Listen(
                    (match.group("proto") or "udp").lower(),
                    match.group("address").strip("[]"),
                    int(match.group("port")) if match.group("port") else None,
                    match.group("adv").strip("[]") if match.group("adv") else None,
                    int(match.group("advport")) if match.group("advport") else None,
                    number,
                )
            )
        elif match := _ALIAS.match(code):
            aliases.append((match.group("alias"), number))
        elif match := _LOADMODULE.match(code):
            modules.append((match.group("name"), number))
        elif match := _MODPARAM.match(code):
            raw_params.append((match.group("module"), match.group("name"), match.group("value"), number))
    params = tuple(
        ModParam(module, name, _unquote(defines.get(value, value)), number) for module, name, value, number in raw_params
    )
    return KamailioCfg(tuple(listens), tuple(aliases), tuple(modules), params, defines, text)


@dataclass(frozen=True)
class Destination:
    set_id: int
    uri: str
    line: int


def parse_dispatcher_list(text: str) -> tuple[Destination, ...]:
    """dispatcher.list: `SETID URI [FLAGS [PRIORITY [ATTRS]]]` per line, `#` comments."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0].isdigit():
            found.append(Destination(int(fields[0]), fields[1], number))
    return tuple(found)
