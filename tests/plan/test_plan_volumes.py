"""Profile [volumes]: adopted volumes render external by their real names, verify holds them to the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnigen.errors import VerifyError
from omnigen.inputs.profile import VOLUME_KEYS
from omnigen.plan.plan import VOLUME_MOUNTS
from omnigen.verify import verify
from tests.conftest import ROOT, compile_example, compose_json, write_files

VPS = ROOT / "profiles" / "vps-nat.toml"
ADOPT = {"OMNIGEN_VOLUMES__POSTGRES_DATA": "prod-env_postgres_data", "OMNIGEN_VOLUMES__MINIO_DATA": "recordings.2019"}


def test_adopted_volumes_are_external_and_the_rest_the_stacks_own(tmp_path: Path) -> None:
    compiled = compile_example(VPS, environ=ADOPT)
    data: dict[str, Any] = compose_json(write_files(tmp_path, compiled.files))
    project = data["name"]
    names = {key: (volume["name"], volume.get("external", False)) for key, volume in data["volumes"].items()}
    assert names["postgres_data"] == ("prod-env_postgres_data", True)
    assert names["minio_data"] == ("recordings.2019", True)
    assert {key for key, (name, external) in names.items() if not external} == set(VOLUME_KEYS) - {"postgres_data", "minio_data"}
    assert all(name == f"{project}_{key}" for key, (name, external) in names.items() if not external)


def test_every_volume_is_mounted_where_the_table_says() -> None:
    compiled = compile_example(VPS)
    import yaml

    services = yaml.safe_load(compiled.files["docker-compose.yml"])["services"]
    mounted = {
        (source, name, target)
        for name, service in services.items()
        for source, target, *_ in (entry.split(":") for entry in service.get("volumes", []))
        if source in VOLUME_MOUNTS
    }
    assert mounted == {(key, service, target) for key, mounts in VOLUME_MOUNTS.items() for service, target in mounts}


def test_the_password_script_comes_with_an_adopted_database_only() -> None:
    assert "set-database-passwords.sh" not in compile_example(VPS).files
    assert "set-database-passwords.sh" not in compile_example(VPS, environ={"OMNIGEN_VOLUMES__MINIO_DATA": "old_minio"}).files
    compiled = compile_example(VPS, environ={"OMNIGEN_VOLUMES__POSTGRES_DATA": "old_db"})
    script = compiled.files["set-database-passwords.sh"]
    assert "for service in postgresql; do" in script
    assert compiled.plan.adopted_databases == ("postgresql",)
    assert "set-database-passwords.sh" not in compiled.plan.secret_files


def test_profiles_without_volumes_render_exactly_as_before() -> None:
    text = compile_example(VPS).files["docker-compose.yml"]
    assert text.endswith("\nvolumes:\n" + "".join(f"  {key}: {{}}\n" for key in sorted(VOLUME_KEYS)))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('name: "prod-env_postgres_data"', 'name: "prod-env_postgres_dat"', "volumes are"),
        ("  postgres_data:\n    external: true\n", "  postgres_data:\n", "volumes are"),
        ('"postgres_data:/var/lib/postgresql/data"', '"postgres_data:/var/lib/postgresql"', "named volumes mounted as"),
        ('      - "django_media:/var/www/media:ro"\n', "", "missing"),
    ],
    ids=["name", "external", "target", "mount"],
)
def test_verify_refuses_volumes_that_differ_from_the_plan(old: str, new: str, expected: str) -> None:
    compiled = compile_example(VPS, environ=ADOPT)
    files = dict(compiled.files)
    assert old in files["docker-compose.yml"]
    files["docker-compose.yml"] = files["docker-compose.yml"].replace(old, new, 1)
    with pytest.raises(VerifyError, match=expected):
        verify(compiled.plan, files)


def test_password_script_snapshot(snapshot_as) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_example(VPS, environ=ADOPT)
    assert snapshot_as("sh") == compiled.files["set-database-passwords.sh"]


def test_adopted_volumes_snapshot(snapshot_as) -> None:  # type: ignore[no-untyped-def]
    text = compile_example(VPS, environ=ADOPT).files["docker-compose.yml"]
    assert snapshot_as("yml") == text[text.index("\nvolumes:\n") + 1 :]
