"""docs/profile.md: every profile key with its type, default, meaning and an example,
generated from the JSON Schema of the model (omnigen/inputs/schema.py), so the page cannot
drift from what `omnigen build` accepts. `omnigen schema --format markdown` prints it;
tests/inputs/test_schema.py fails when the committed page is stale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from omnigen.inputs.profile import HOSTNAME_PATTERN, IMAGE_PATTERN, TIMEZONE_PATTERN

IPV4_TYPES = {"ipv4": "IPv4 address", "ipv4network": "IPv4 network (CIDR, e.g. 10.22.22.0/24)"}
LONG_PATTERN = 48  # longer patterns are described in words; `omnigen schema` has them
PATTERN_WORDS = {
    IMAGE_PATTERN: "image reference with an explicit tag, not `latest` (`registry/name:tag`, optional `@sha256:...`)",
    TIMEZONE_PATTERN: "IANA time zone name (`UTC`, `Area/City`)",
    HOSTNAME_PATTERN: "DNS name",
}

# The page says `omnigen/profile.py`: its bytes are an output (`omnigen schema --format markdown`),
# pinned before the model moved to omnigen/inputs/profile.py.
INTRO = """\
# Profile reference

<!-- Generated from the profile model by `omnigen schema --format markdown -o docs/profile.md`
     (`make snapshots`); do not edit: `make test` fails when this page is stale. -->

Every key an `omnivoip.toml` profile can hold, from the model `omnigen build` validates
with (`omnigen/profile.py`). Unknown keys are errors, in the file and in the environment.

- **Types are strict.** `concurrent_calls = 50`, not `"50"`; `webrtc = true`, not `"true"` or `1`.
- **Environment overrides.** Any key can be set from the environment: `OMNIGEN_`, then the
  dotted key in capitals with `__` between levels, e.g. `OMNIGEN_CAPACITY__CONCURRENT_CALLS=60`
  for `capacity.concurrent_calls` (environment values are text and are read as the key's type).
- **Editors.** `#:schema ./omnivoip.schema.json` as the first line (written by
  `omnigen schema -o omnivoip.schema.json`) gives completion and these descriptions in editors
  that use Taplo (Even Better TOML).
- **Credentials** are never in the profile: see [the secrets sidecar](#the-secrets-sidecar) at the end.

A minimal profile:

```toml
schema_version = 1

[project]
name = "acme"

[network]
public_ip = "203.0.113.10"

[capacity]
concurrent_calls = 50
```
"""

SIDECAR_INTRO = """\
## The secrets sidecar

Credentials live beside the profile in `<profile-stem>.secrets.toml` (`omnivoip.toml` ->
`omnivoip.secrets.toml`), mode 0600, never committed. Every key is optional: a missing one is
generated on the first build (32 random URL-safe characters) and never regenerated. Any value
you set reaches the services byte for byte (quotes, `$`, `#`, `@`, `/`, backslashes, unicode);
placeholders such as `changeme` are refused.
"""


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    return schema["$defs"][ref.rsplit("/", 1)[-1]]  # type: ignore[no-any-return]


def _non_null(node: dict[str, Any]) -> dict[str, Any]:
    """The value part of `X | None` (anyOf [X, null])."""
    options = [option for option in node.get("anyOf", []) if option.get("type") != "null"]
    return {**options[0], **{key: value for key, value in node.items() if key != "anyOf"}} if len(options) == 1 else node


def _is_table(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    return _resolve(schema, _non_null(node)).get("type") == "object"


def _is_table_array(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    items = node.get("items")
    return node.get("type") == "array" and isinstance(items, dict) and _resolve(schema, items).get("type") == "object"


def _toml(value: Any) -> str:
    # JSON's strings, numbers, booleans and arrays are valid TOML inline values for these keys.
    return json.dumps(value, ensure_ascii=False)


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _type(node: dict[str, Any]) -> str:
    node = _non_null(node)
    if "const" in node:
        return f"{_code(_toml(node['const']))} (the only value)"
    if "enum" in node:
        return "one of " + ", ".join(_code(_toml(value)) for value in node["enum"])
    kind = node.get("type")
    if kind == "integer":
        low, high = node.get("minimum"), node.get("maximum")
        return f"integer {low} to {high}" if low is not None and high is not None else "integer"
    if kind == "number":
        low = f"more than {node['exclusiveMinimum']}" if "exclusiveMinimum" in node else node.get("minimum")
        high = node.get("maximum")
        return f"number, {low}, at most {high}" if low is not None and high is not None else "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        items = node.get("items", {})
        of = "one of " + ", ".join(_code(_toml(value)) for value in items["enum"]) if "enum" in items else _type(items)
        least = f", at least {node['minItems']}" if node.get("minItems") else ""
        return f"array ({of}){least}"
    if kind == "string":
        if node.get("format") in IPV4_TYPES:
            return IPV4_TYPES[node["format"]]
        pattern = node.get("pattern")
        if pattern is not None and "25[0-5]" in pattern:
            return IPV4_TYPES["ipv4"]
        if pattern in PATTERN_WORDS:
            return PATTERN_WORDS[pattern]
        if pattern is not None and len(pattern) <= LONG_PATTERN:
            return f"string matching {_code(pattern)}"
        if pattern is not None:
            return "string (full pattern in `omnigen schema`)"
        return "string"
    raise ValueError(f"reference: no words for the JSON Schema type {node!r}")


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in node or node["default"] is None:
        return "not set"
    return _code(_toml(node["default"]))


def _example(key: str, node: dict[str, Any]) -> str:
    """The model's `examples`, else the const or default value; a key with none is a model defect."""
    value_node = _non_null(node)
    if node.get("examples"):
        value = node["examples"][0]
    elif "const" in value_node:
        value = value_node["const"]
    elif node.get("default") not in (None, [], {}):
        value = node["default"]
    else:
        raise ValueError(f"reference: {key} has no default and no example; add examples=[...] to its Field")
    return _code(f"{key.rsplit('.', 1)[-1]} = {_toml(value)}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(schema: dict[str, Any], table: dict[str, Any], prefix: str) -> Iterator[str]:
    required = set(table.get("required", []))
    for name, node in table["properties"].items():
        if _is_table(schema, node) or _is_table_array(schema, node):
            continue
        key = f"{prefix}{name}"
        cells = (_code(key), _type(node), _default(node, name in required), node.get("description", ""), _example(key, node))
        yield "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _sections(schema: dict[str, Any], table: dict[str, Any], path: str, header: str, description: str) -> Iterator[str]:
    rows = list(_rows(schema, table, f"{path}." if path else ""))
    if rows:
        yield f"## {header}\n"
        if description:
            yield f"{description}\n"
        yield "| key | type | default | meaning | example |"
        yield "|---|---|---|---|---|"
        yield from rows
        yield ""
    required = set(table.get("required", []))
    for name, node in table["properties"].items():
        child_path = f"{path}.{name}" if path else name
        if _is_table(schema, node):
            child = _resolve(schema, _non_null(node))
            needed = " Required." if name in required else " Optional: leave the table out when not needed." if "default" in node else ""
            yield from _sections(schema, child, child_path, f"[{child_path}]", f"{node.get('description', '')}{needed}".strip())
        elif _is_table_array(schema, node):
            child = _resolve(schema, node["items"])
            yield from _sections(schema, child, f"{child_path}[]", f"[[{child_path}]]", node.get("description", ""))


def profile_reference() -> str:
    from omnigen.inputs.profile import Secrets
    from omnigen.inputs.schema import profile_schema

    schema = profile_schema()
    parts = [INTRO, *_sections(schema, schema, "", "Top level", "")]
    secrets = Secrets.model_json_schema(mode="validation")
    parts += [SIDECAR_INTRO, "| key | meaning |", "|---|---|"]
    parts += [f"| {_code(name)} | {_cell(node.get('description', ''))} |" for name, node in secrets["properties"].items()]
    return "\n".join(parts).rstrip("\n") + "\n"
