"""omnigen schema: the committed JSON Schema is current, complete and accepts every example."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from omnigen.schema import profile_schema, schema_text
from tests.conftest import EXAMPLES, ROOT, node_tool, run_cli

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
    bad.write_text('#:schema ../schema/omnivoip.schema.json\nschema_version = 1\n[project]\nname = "acme"\n[capacity]\nconcurrent_calls = 0\ncolour = 1\n')
    result = subprocess.run([_taplo(), "check", str(bad)], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "'colour' was unexpected" in output
    assert "concurrent_calls" in output or "minimum" in output.lower()
