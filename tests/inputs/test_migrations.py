"""omnigen/inputs/migrations.py: every registered migration has its cases, and each case is
pinned three ways: the exact migrated text (a syrupy snapshot reviewers read), the
values (against an independent statement of the format change), and the comments
(every one the user wrote is still there)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnigen.errors import ProfileError
from omnigen.inputs.migrations import MIGRATIONS, migrate_text
from omnigen.inputs.profile import SCHEMA_VERSION
from omnigen.loading import validate_profile
from tests.conftest import ROOT

CASES = ROOT / "tests" / "migrations"


def _v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 -> 1 as docs/releases.md states it, on plain data."""
    data = {**data, "schema_version": 1}
    capacity = dict(data.get("capacity", {}))
    renames = {"calls": "concurrent_calls", "headroom": "headroom_percent"}
    data["capacity"] = {renames.get(key, key): value for key, value in capacity.items()}
    if "rtp" in data:
        rtp = {("start" if key == "port_min" else key): value for key, value in data["rtp"].items() if key != "port_max"}
        data["rtp"] = rtp
    return data


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2 as docs/releases.md states it: gearman and the dialer database are gone."""
    data = {**data, "schema_version": 2}
    gone = {"images": ("gearman",), "database": ("dialer_name", "dialer_user"), "volumes": ("dialer_postgres_data",)}
    for table, keys in gone.items():
        if table in data:
            data[table] = {key: value for key, value in data[table].items() if key not in keys}
    return data


# What each migration means for the data, stated independently of its tomlkit implementation.
EXPECTED: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _v0_to_v1, 1: _v1_to_v2}


def cases() -> list[tuple[int, Path]]:
    found = []
    for folder in sorted(CASES.iterdir()):
        match = re.fullmatch(r"(\d+)-to-(\d+)", folder.name)
        assert match and int(match.group(2)) == int(match.group(1)) + 1, f"{folder}: name case folders N-to-N+1"
        found += [(int(match.group(1)), case) for case in sorted(folder.glob("*.toml"))]
    return found


def test_every_migration_is_registered_and_tested() -> None:
    assert sorted(MIGRATIONS) == list(range(SCHEMA_VERSION)), "one migration per older schema, 0 to SCHEMA_VERSION - 1"
    tested = {source for source, _ in cases()}
    assert tested == set(MIGRATIONS), "every migration needs cases in tests/migrations/<N>-to-<N+1>/"
    assert set(EXPECTED) == set(MIGRATIONS), "state what each migration does to the data in EXPECTED"


@pytest.mark.parametrize(("source", "case"), cases(), ids=lambda value: value.stem if isinstance(value, Path) else str(value))
def test_migration_case(source: int, case: Path, snapshot_as) -> None:  # type: ignore[no-untyped-def]
    before = case.read_text(encoding="utf-8")
    result = migrate_text(before, str(case))
    assert (result.source, result.target) == (source, SCHEMA_VERSION)
    assert snapshot_as("toml") == result.text

    # The values: what the format change says, applied step by step up to the current schema.
    expected = tomllib.loads(before)
    for version in range(source, SCHEMA_VERSION):
        expected = EXPECTED[version](expected)
    assert tomllib.loads(result.text) == expected

    # The comments: every one the user wrote survives (a retired key's line becomes a comment too).
    for comment in re.findall(r"#.*", before):
        assert comment in result.text, comment
    validate_profile(tomllib.loads(result.text), file=str(case), text=result.text, env={})

    # Migrating the result again changes nothing.
    again = migrate_text(result.text, str(case))
    assert not again.needed and again.text == result.text


def test_retired_key_is_left_as_a_comment_where_it_was() -> None:
    text = "schema_version = 0\n[rtp]\nport_min = 10000\nport_max = 10399  # 400 ports\n[project]\nname = \"a\"\n"
    migrated = migrate_text(text, "p.toml").text
    lines = migrated.splitlines()
    assert lines[2] == "start = 10000"
    assert lines[3].startswith("# port_max = 10399  # 400 ports  <- removed by omnigen migrate:")
    assert "10000-10399 (400 ports)" in lines[3]


def test_current_profiles_are_untouched() -> None:
    text = (ROOT / "profiles" / "lan-office.toml").read_text()
    result = migrate_text(text, "lan-office.toml")
    assert not result.needed and result.text == text and result.changes == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version = 99\n", "this profile is for a newer omnigen (schema_version 99; this one knows versions up to 2)"),
        ('schema_version = "1"\n', "schema_version must be a whole number"),
        ("schema_version = -1\n", "schema_version must be a whole number"),
        ("schema_version = true\n", "schema_version must be a whole number"),
        ("schema_version = 0\n[capacity]\ncalls = 5\nconcurrent_calls = 6\n", "both capacity.calls (schema 0) and capacity.concurrent_calls are set"),
        ("schema_version = 0\n[capacity\n", "malformed TOML"),
    ],
    ids=["newer", "string", "negative", "boolean", "both-names", "malformed"],
)
def test_refusals_are_located(text: str, message: str) -> None:
    with pytest.raises(ProfileError) as refused:
        migrate_text(text, "p.toml")
    assert message in refused.value.render()
    assert refused.value.render().startswith("p.toml")


def test_migration_reads_toml_like_a_build() -> None:
    # One TOML reader for profiles, sidecars and migrations: the same file:line:column.
    with pytest.raises(ProfileError) as refused:
        migrate_text("schema_version = 0\n[capacity\n", "p.toml")
    assert refused.value.render() == "p.toml:2:10: malformed TOML: Expected ']' at the end of a table declaration; fix the TOML syntax"


def test_migration_names_a_duplicate_key() -> None:
    with pytest.raises(ProfileError) as refused:
        migrate_text('schema_version = 0\n[capacity]\ncalls = 5\ncalls = 6\n', "p.toml")
    assert refused.value.render() == "p.toml:4:1: capacity.calls: malformed TOML: the key is defined twice (first on line 3); keep one definition"
