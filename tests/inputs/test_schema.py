"""omnigen schema: the committed JSON Schema is current, complete and accepts every example."""

from __future__ import annotations

import json
import subprocess
import tomllib
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from omnigen.inputs.profile import Profile, Secrets
from omnigen.inputs.schema import profile_schema, schema_text
from omnigen.tools.reference import profile_reference
from tests.conftest import EXAMPLES, ROOT, node_tool, run_cli

COMMITTED = ROOT / "schema" / "omnivoip.schema.json"
REFERENCE = ROOT / "docs" / "profile.md"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == schema_text(), "run `make snapshots` (or `omnigen schema -o schema/omnivoip.schema.json`)"


def test_schema_command_prints_it() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == profile_schema()


def test_committed_profile_reference_is_current() -> None:
    assert REFERENCE.read_text() == profile_reference(), "docs/profile.md is stale: run `make snapshots` (or `omnigen schema --format markdown -o docs/profile.md`)"
    result = run_cli("schema", "--format", "markdown")
    assert result.returncode == 0 and result.stdout == REFERENCE.read_text()


def _leaf_keys(model: Any, prefix: str = "") -> list[str]:
    """Every key a profile can hold, walked on the pydantic models themselves (not on the schema the page is made from)."""
    keys = []
    for name, field in model.model_fields.items():
        inner = [arg for arg in (typing.get_args(field.annotation) or (field.annotation,)) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        if inner:
            keys += _leaf_keys(inner[0], f"{prefix}{name}{'[]' if typing.get_origin(field.annotation) is tuple else ''}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_profile_reference_lists_every_key_with_an_example_that_validates() -> None:
    text = REFERENCE.read_text()
    schema = profile_schema()
    rows = {line.split(" | ")[0].removeprefix("| `").removesuffix("`"): line for line in text.splitlines() if line.startswith("| `")}
    for key in _leaf_keys(Profile):
        assert key in rows, f"docs/profile.md lacks {key}"
        example = rows[key].rsplit(" | ", 1)[1].removeprefix("`").removesuffix("` |")
        value = tomllib.loads(example)[key.rsplit(".", 1)[-1]]
        node: dict[str, Any] = schema
        for part in key.replace("[]", "").split("."):
            node = node["properties"][part] if "properties" in node else node
            while "$ref" in node or "anyOf" in node or (node.get("type") == "array" and "$ref" in node.get("items", {})):
                if "anyOf" in node:
                    node = next(option for option in node["anyOf"] if option.get("type") != "null")
                elif "$ref" in node:
                    node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
                else:
                    node = schema["$defs"][node["items"]["$ref"].rsplit("/", 1)[-1]]
        jsonschema.validate(value, {"$defs": schema["$defs"], **node})
    for name in Secrets.model_fields:
        assert f"| `{name}` |" in text, f"docs/profile.md lacks the sidecar key {name}"


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(name, prop) for name, prop in schema.get("properties", {}).items()]
    for definition in schema.get("$defs", {}).values():
        found += [(name, prop) for name, prop in definition.get("properties", {}).items()]
    return found


def test_every_field_has_a_description() -> None:
    missing = [name for name, prop in _properties(profile_schema()) if not prop.get("description")]
    assert not missing


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_and_point_at_the_schema(profile: Path) -> None:
    text = profile.read_text()
    assert text.splitlines()[0] == "#:schema ../schema/omnivoip.schema.json"
    jsonschema.validate(tomllib.loads(text), profile_schema())


def test_schema_rejects_unknown_keys_and_bad_values() -> None:
    schema = profile_schema()
    base = tomllib.loads(EXAMPLES[0].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**base, "typo": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**base, "capacity": {"concurrent_calls": 0}}, schema)


def _taplo() -> str:
    return str(node_tool("taplo"))


def test_taplo_validates_every_example_through_its_schema_directive() -> None:
    """What an editor with Taplo / Even Better TOML does: follow `#:schema` and validate."""
    result = subprocess.run([_taplo(), "check", *map(str, EXAMPLES)], capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_taplo_reports_typos_and_bad_values(tmp_path: Path) -> None:
    schema_dir = tmp_path / "schema"
    schema_dir.mkdir()
    (schema_dir / "omnivoip.schema.json").write_text(COMMITTED.read_text())
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    bad = profiles / "bad.toml"
    bad.write_text('#:schema ../schema/omnivoip.schema.json\nschema_version = 2\n[project]\nname = "acme"\n[capacity]\nconcurrent_calls = 0\ncolour = 1\n')
    result = subprocess.run([_taplo(), "check", str(bad)], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "'colour' was unexpected" in output
    assert "concurrent_calls" in output or "minimum" in output.lower()
