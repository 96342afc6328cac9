"""Merging Compose files the way Compose does, keeping where every value came from.

`docker compose` reads `compose.yaml` and then `compose.override.yaml` (or the
files given with `-f`, `COMPOSE_FILE`, `extends`) and merges them: mappings
merge key by key, most sequences append, `command`/`entrypoint`/
`healthcheck.test` are replaced, `environment`/`labels`/`sysctls` merge by
key, `volumes`/`secrets`/`configs` by mount target, `ports` drop exact
repeats, and the `!reset` / `!override` tags remove or replace a value
(compose-spec merge.md; compose-go override/merge.go and uncity.go).

Every value carries a `Where` tree so a finding in merged data still points at
the file and line that set it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omnigen.formats.composeports import parse_port
from omnigen.formats.yamlpos import Override, Path, Reset


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Where:
    """Positions parallel to a data tree: the location of a key or item and of its children."""

    at: Location
    kids: dict[str | int, Where] = field(default_factory=dict)
    raw: str | None = None  # a string's text before interpolation, when it had a `$`

    def child(self, key: str | int) -> Where:
        return self.kids.get(key) or Where(self.at)


def where_from_lines(lines: dict[Path, int], file: str) -> Where:
    root = Where(Location(file, lines.get((), 1)))
    nodes: dict[Path, Where] = {(): root}
    for path in sorted(lines, key=len):  # parents first, so each node finds its parent in one lookup
        if not path:
            continue
        parent = nodes.get(path[:-1])
        if parent is None:  # a gap in the positions: the missing levels take their parent's location
            parent = root
            for depth, part in enumerate(path[:-1], start=1):
                parent = parent.kids.setdefault(part, Where(parent.at))
                nodes.setdefault(path[:depth], parent)
        node = Where(Location(file, lines[path]))
        parent.kids[path[-1]] = node
        nodes[path] = node
    return root


def flatten(where: Where, prefix: Path = (), out: dict[Path, Location] | None = None) -> dict[Path, Location]:
    out = {} if out is None else out
    out[prefix] = where.at
    for key, kid in where.kids.items():
        flatten(kid, (*prefix, key), out)
    return out


Positioned = tuple[Any, Where]

# Attributes whose list and mapping spellings mean the same KEY=VALUE set.
KEY_VALUE_ATTRIBUTES = frozenset({"environment", "labels", "sysctls", "annotations"})
# Replaced by the later file, never appended (shell commands).
REPLACED = frozenset({("command",), ("entrypoint",), ("healthcheck", "test")})


def _matches(path: Path, pattern: tuple[str, ...]) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == part for part, p in zip(path, pattern, strict=True))


def merge(base: Positioned, override: Positioned, path: Path = ()) -> Positioned:
    """Merge `override` into `base` (both with positions); neither input is modified."""
    value, where = override
    if isinstance(value, Override):
        return strip_tags((value.value, where))
    if isinstance(value, Reset):
        return (None, where)
    base_value = base[0]
    if len(path) >= 3 and path[0] == "services":
        attribute = path[2:]
        if attribute in REPLACED:
            return strip_tags(override)
        if len(attribute) == 1 and attribute[0] in KEY_VALUE_ATTRIBUTES:
            return _merge_mappings(to_mapping(base), to_mapping(strip_tags(override)), path)
        if attribute in {("depends_on",), ("networks",)}:
            return _merge_mappings(_names_to_mapping(base), _names_to_mapping(override), path)
        if attribute == ("build",):
            return _merge_mappings(_build_mapping(base), _build_mapping(override), path)
        if len(attribute) == 1 and attribute[0] in KEYED_SEQUENCES and isinstance(base_value, list) and isinstance(value, list):
            return _merge_keyed(base, override, KEYED_SEQUENCES[attribute[0]])
        logging_driver_changes = (
            attribute == ("logging",)
            and isinstance(base_value, dict)
            and isinstance(value, dict)
            and "driver" in value
            and "driver" in base_value
            and value["driver"] != base_value["driver"]
        )
        if logging_driver_changes:
            # compose-go merges logging options only when both files use the same driver.
            return strip_tags(override)
    if isinstance(base_value, dict) and isinstance(value, dict):
        return _merge_mappings(base, override, path)
    if isinstance(base_value, list) and isinstance(value, list):
        return _merge_keyed(base, override, _identity)
    if value is None:
        return base
    return strip_tags(override)


def _merge_mappings(base: Positioned, override: Positioned, path: Path) -> Positioned:
    base_value, base_where = base
    value, where = override
    merged = dict(base_value)
    merged_where = Where(base_where.at, dict(base_where.kids))
    for key, item in value.items():
        item_where = where.child(key)
        if isinstance(item, Reset):
            merged.pop(key, None)
            merged_where.kids.pop(key, None)
            continue
        if key in merged and not str(key).startswith("x-"):
            result, result_where = merge((merged[key], merged_where.child(key)), (item, item_where), (*path, key))
        else:
            result, result_where = strip_tags((item, item_where))
        merged[key] = result
        merged_where.kids[key] = result_where
    return merged, merged_where


def _merge_keyed(base: Positioned, override: Positioned, key_of: Callable[[Any], Any]) -> Positioned:
    """Append override items; an item whose key is already present replaces that entry in place."""
    base_value, base_where = base
    value, where = override
    items: list[Any] = []
    wheres: list[Where] = []
    index: dict[Any, int] = {}
    for source, source_where in ((base_value, base_where), (value, where)):
        for position, item in enumerate(source):
            key = key_of(item)
            if key in index:
                items[index[key]] = item
                wheres[index[key]] = source_where.child(position)
            else:
                index[key] = len(items)
                items.append(item)
                wheres.append(source_where.child(position))
    return items, Where(base_where.at, dict(enumerate(wheres)))


def _identity(item: Any) -> Any:
    return repr(item)


def _volume_target(item: Any) -> Any:
    if isinstance(item, dict):
        return ("target", item.get("target"))
    if isinstance(item, str):
        parts = split_volume(item)
        return ("target", parts[1] if len(parts) > 1 else parts[0])
    return repr(item)


def _mount_target(default_dir: str) -> Callable[[Any], Any]:
    def key(item: Any) -> Any:
        if isinstance(item, dict):
            return item.get("target") or f"{default_dir}/{item.get('source')}"
        return f"{default_dir}/{item}"

    return key


def _port_key(item: Any) -> Any:
    spec = parse_port(item)
    if spec is None:
        return repr(item)
    return (spec.host_ip, spec.host_start, spec.host_end, spec.container_start, spec.container_end, spec.protocol)


KEYED_SEQUENCES: dict[str, Callable[[Any], Any]] = {
    "volumes": _volume_target,
    "secrets": _mount_target("/run/secrets"),
    "configs": _mount_target(""),
    "ports": _port_key,
}


def split_volume(spec: str) -> list[str]:
    """`source:target[:mode]` split on the colons Compose splits on (not a Windows drive's)."""
    parts = spec.split(":")
    if len(parts) > 1 and len(parts[0]) == 1 and parts[0].isalpha() and parts[1].startswith(("\\", "/")):
        parts = [parts[0] + ":" + parts[1], *parts[2:]]
    return parts


def to_mapping(positioned: Positioned) -> Positioned:
    """`[KEY=VALUE, KEY]` -> `{KEY: VALUE, KEY: None}`, each entry keeping its item's position."""
    value, where = positioned
    if not isinstance(value, list):
        return positioned
    mapping: dict[str, Any] = {}
    kids: dict[str | int, Where] = {}
    for index, item in enumerate(value):
        key, separator, rest = str(item).partition("=")
        mapping[key] = rest if separator else None
        kids[key] = where.child(index)
    return mapping, Where(where.at, kids)


def _names_to_mapping(positioned: Positioned) -> Positioned:
    value, where = positioned
    if not isinstance(value, list):
        return positioned
    return {str(item): None for item in value}, Where(where.at, {str(item): where.child(i) for i, item in enumerate(value)})


def _build_mapping(positioned: Positioned) -> Positioned:
    value, where = positioned
    if isinstance(value, str):
        return {"context": value}, Where(where.at, {"context": Where(where.at)})
    return positioned


def strip_tags(positioned: Positioned) -> Positioned:
    """Resolve `!override` (keep the value) and `!reset` (drop it) where no merge partner exists."""
    value, where = positioned
    if isinstance(value, Override):
        return strip_tags((value.value, where))
    if isinstance(value, Reset):
        return None, where
    if isinstance(value, dict):
        kept = {key: item for key, item in value.items() if not isinstance(item, Reset)}
        if len(kept) == len(value) and not any(isinstance(item, (Override, dict, list)) for item in value.values()):
            return positioned
        result: dict[Any, Any] = {}
        kids = dict(where.kids)
        for key, item in kept.items():
            result[key], kids[key] = strip_tags((item, where.child(key)))
        for key in value.keys() - kept.keys():
            kids.pop(key, None)
        return result, Where(where.at, kids)
    if isinstance(value, list) and any(isinstance(item, (Override, Reset, dict, list)) for item in value):
        stripped = [strip_tags((item, where.child(i))) for i, item in enumerate(value) if not isinstance(item, Reset)]
        return [item for item, _ in stripped], Where(where.at, {i: w for i, (_, w) in enumerate(stripped)})
    return positioned
