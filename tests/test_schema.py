"""omnigen schema: the committed JSON Schema is current, complete and accepts every example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomllib

from omnigen.schema import profile_schema, schema_text
from tests.conftest import EXAMPLES, ROOT, run_cli

COMMITTED = ROOT / "schema" / "omnivoip.schema.json"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == schema_text(), "run `make snapshots` (or `omnigen schema -o schema/omnivoip.schema.json`)"


def test_schema_command_prints_it() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == profile_schema()


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
