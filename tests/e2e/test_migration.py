"""A running v2 site migrates with its data and its credentials, following docs/migrating.md.

A v2-layout stack (tests/e2e/v2site/prod-env, compose project prod-env) runs on the
private engine with Debian's real PostgreSQL for both databases; rows go into both,
stand-ins write files into every other volume. Then every `sh` block of
docs/migrating.md runs, in order, as an operator would run it (the real Compose
binary as the `docker compose` plugin, omnigen from this checkout), with checks
between the steps: the new stack sees the same rows and files, the main database's
real password still authenticates, the dialer database (which no OmniVoIP component
opens: the new stack has none) is reported no longer used and left as it was, no
volume of the old stack goes unmentioned in the report, and the way back brings the
old stack up on the same data.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnigen.inputs.profile import load_secrets, secrets_path_for
from omnigen.loading import load_profile
from omnigen.pipeline import compile_profile
from tests.conftest import ROOT
from tests.e2e.engine import DockerEngine, compose_binary
from tests.e2e.realpostgres import build_postgres
from tests.e2e.standins import BASE_IMAGE, build_base, build_standins, used_image_keys

pytestmark = pytest.mark.e2e

RUNBOOK = ROOT / "docs" / "migrating.md"
V2_SITE = Path(__file__).resolve().parent / "v2site"
REFERENCE_ENV = ROOT / "tests" / "reference" / "omnivoip-v2" / "prod-env" / ".env"
PROJECT = "prod-env"
MAIN_PASSWORD = "Kq7'w9 real-main-db pass"  # a real password: kept as it is, quote and space included
DIALER_PLACEHOLDER = "dialer456_CHANGE_ME"  # the v2 env.template's default, which the old dialer database keeps
VOLUMES = ("postgres_data", "dialer_postgres_data", "redis_data", "minio_data", "django_media", "django_static", "django_logs", "asterisk_spool", "asterisk_logs", "asterisk_sounds")
RETIRED_VOLUME = "dialer_postgres_data"  # the dialer database's: no component opens it (docs/application.md)
NEW_VOLUMES = tuple(volume for volume in VOLUMES if volume != RETIRED_VOLUME)
# What the old stack's stand-ins wrote, and where each service of the new stack must see it.
FILES = {
    ("redis", "/data/appendonly.aof"): "SET campaign:42 running",
    ("minio", "/data/omnivoip/recordings/call-1001.wav"): "RIFF call 1001",
    ("django-app", "/app/media/agent-7.png"): "agent photo",
    ("django-app", "/app/static/omnivoip.css"): "body{}",
    ("django-app", "/app/logs/django.log"): "django started",
    ("celery-worker", "/app/media/agent-7.png"): "agent photo",
    ("nginx", "/var/www/static/omnivoip.css"): "body{}",
    ("nginx", "/var/www/media/agent-7.png"): "agent photo",
    ("asterisk", "/var/spool/asterisk/voicemail/default/1001/msg0000.txt"): "msg0000",
    ("asterisk", "/var/log/asterisk/messages"): "NOTICE started",
    ("asterisk", "/var/lib/asterisk/sounds/custom/welcome.wav"): "welcome prompt",
}
UP_TIMEOUT = 300


def runbook_blocks() -> list[str]:
    """The `sh` blocks of docs/migrating.md, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", RUNBOOK.read_text(), flags=re.S | re.M)


@dataclass
class Site:
    engine: DockerEngine
    root: Path
    blocks: list[str]

    @property
    def old(self) -> Path:
        return self.root / "omnivoip-v2" / "prod-env"

    @property
    def new(self) -> Path:
        return self.root / "omnivoip"

    @property
    def profile(self) -> Path:
        return self.root / "omnivoip.toml"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    def env(self) -> dict[str, str]:
        env = self.engine.env()
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def run_step(self, number: int, expect: str = "") -> subprocess.CompletedProcess[str]:
        """Run the runbook's block `number` (0: the variables), with the variables set to this site's folders."""
        variables = self.blocks[0]
        for name, path in (("OLD", self.old), ("PROFILE", self.profile), ("NEW", self.new), ("BACKUP", self.backup)):
            variables, count = re.subn(rf"^{name}=\S+", f"{name}={path}", variables, flags=re.M)
            assert count == 1, f"docs/migrating.md: the first sh block must set {name}"
        script = f"set -eu\n{variables}\n{self.blocks[number]}"
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=self.env(), cwd=self.root, check=False, timeout=UP_TIMEOUT + 120)
        assert result.returncode == 0, f"docs/migrating.md block {number} failed:\n{self.blocks[number]}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        assert expect in result.stdout + result.stderr
        return result

    def compose(self, folder: Path, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", "compose", *args], capture_output=True, text=True, env=self.env(), cwd=folder, input=stdin, check=False, timeout=UP_TIMEOUT + 60)
        if check:
            assert result.returncode == 0, f"docker compose {' '.join(args)} in {folder}:\n{result.stdout}\n{result.stderr}"
        return result

    def sql(self, folder: Path, service: str, statement: str, password: str) -> subprocess.CompletedProcess[str]:
        """Run SQL over TCP as the database's user with `password`, which reaches psql on stdin, never argv."""
        inside = 'read -r PGPASSWORD; export PGPASSWORD; psql -X -w -q -At -h "$DB_HOST" -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "$SQL"'
        return self.compose(folder, "exec", "-T", "-e", f"DB_HOST={service}", "-e", f"SQL={statement}", service, "sh", "-c", inside, stdin=password + "\n", check=False)

    def volumes(self) -> set[str]:
        listed = self.engine.docker("volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout
        return set(listed.split())


def env_value(path: Path, key: str) -> str:
    from omnigen.formats import dotenv

    return dotenv.as_dict(dotenv.parse(path.read_text()))[key]


@pytest.fixture(scope="module")
def site(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("migration")
    shutil.copytree(V2_SITE, root / "omnivoip-v2")
    env = REFERENCE_ENV.read_text()
    for old, new in (
        ("POSTGRES_PASSWORD=CHANGE_THIS_PASSWORD_123", f'POSTGRES_PASSWORD="{MAIN_PASSWORD}"'),
        ("SUBNET=10.22.22.0/24", "SUBNET=10.231.78.0/24"),
        ("GATEWAY=10.22.22.254", "GATEWAY=10.231.78.254"),
        ("DIALER_POSTGRES_PORT=5433", "DIALER_POSTGRES_PORT=25433"),
    ):
        assert env.count(old) == 1, old
        env = env.replace(old, new)
    assert f"DIALER_POSTGRES_PASSWORD={DIALER_PLACEHOLDER}" in env
    (root / "omnivoip-v2" / "prod-env" / ".env").write_text(env)
    # `docker compose` is the real Compose binary, installed as the CLI plugin of this engine's client.
    plugins = Path(engine.env()["DOCKER_CONFIG"]) / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy2(compose_binary(), plugins / "docker-compose")
    site = Site(engine, root, runbook_blocks())
    # The v2 images: Debian's PostgreSQL, and the stand-in base under every other name the old stack runs.
    build_base(engine)
    old_env = site.old / ".env"
    build_postgres(engine, env_value(old_env, "POSTGRES_IMG"))
    for key in ("REDIS_IMG", "MINIO_IMG", "BACKEND_IMG", "ASTERISK_IMG", "NGINX_IMG"):
        engine.docker("tag", BASE_IMAGE, env_value(old_env, key))
    try:
        yield site
    finally:
        for folder in (site.new, site.old):
            if (folder / "docker-compose.yml").exists():
                site.compose(folder, "down", "--timeout", "5", check=False)
        for volume in site.volumes():
            engine.docker("volume", "rm", "--force", volume, check=False)


def test_a_running_v2_site_migrates_with_its_data_and_credentials(site: Site) -> None:
    engine = site.engine
    # The running v2 site, with rows in both databases and files in every other volume.
    up = site.compose(site.old, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT), check=False)
    assert up.returncode == 0, f"{up.stderr}\n{site.compose(site.old, 'logs', '--no-color', '--tail', '20', check=False).stdout}"
    assert site.volumes() == {f"{PROJECT}_{volume}" for volume in VOLUMES}
    main_rows = "create table calls (id int primary key, agent text); insert into calls values (1, 'ana'), (2, 'bruno'), (3, 'carla'); select count(*) from calls"
    assert site.sql(site.old, "postgresql", main_rows, MAIN_PASSWORD).stdout.split() == ["3"]
    dialer_rows = "create table campaigns (id int, name text); insert into campaigns values (7, 'cobranzas'); select name from campaigns"
    assert site.sql(site.old, "dialer-postgresql", dialer_rows, DIALER_PLACEHOLDER).stdout.split() == ["cobranzas"]

    # 1. Back up, while the old stack runs.
    site.run_step(1)
    for service, table in (("postgresql", "calls"), ("dialer-postgresql", "campaigns")):
        dump = (site.backup / f"{service}.dump").read_bytes()
        listing = subprocess.run(["docker", "compose", "exec", "-T", service, "pg_restore", "--list"], input=dump, capture_output=True, env=site.env(), cwd=site.old, check=False)
        assert f"TABLE public {table}".encode() in listing.stdout, listing.stderr
    assert {path.name for path in site.backup.glob("*.tgz")} == {f"{PROJECT}_{volume}.tgz" for volume in VOLUMES}

    # 2. Import: every volume of the old stack is named in the report; the dialer database's is no longer used.
    report = site.run_step(2).stdout
    for volume in site.volumes():
        state = "no longer used" if volume == f"{PROJECT}_{RETIRED_VOLUME}" else r"reused as volumes\."
        assert re.search(rf"^  {re.escape(volume)}: {state}", report, flags=re.M), f"{volume} is not reported {state}:\n{report}"
    assert "omnidialer" not in report, "nothing asks for the retired dialer database"
    assert "database user 'omnivoip'" not in report, "the main database's real password is kept"
    assert MAIN_PASSWORD not in report

    # 3. Build.
    site.run_step(3)
    assert (site.new / "set-database-passwords.sh").is_file()
    profile = load_profile(site.profile, {})
    secrets = load_secrets(secrets_path_for(site.profile))
    assert secrets.postgres_password == MAIN_PASSWORD
    assert profile.build.prebuilt, "the v2 site runs published images: the new one pulls them too"
    compiled = compile_profile(profile, secrets)
    assert (site.new / "docker-compose.yml").read_text() == compiled.files["docker-compose.yml"]
    keys = tuple(key for key in used_image_keys(compiled.plan, compiled.files["docker-compose.yml"]) if key != "postgres")
    build_standins(engine, compiled.plan, keys)
    build_postgres(engine, compiled.plan.images["postgres"].image)

    # 4. Stop the old stack: containers gone, volumes kept.
    site.run_step(4)
    assert site.compose(site.old, "ps", "--all", "--quiet").stdout.strip() == ""
    assert site.volumes() == {f"{PROJECT}_{volume}" for volume in VOLUMES}

    # 5. The database, its user's password set from the new .env (the real one, kept).
    result = site.run_step(5, expect="postgresql: its user now has the password in .env")
    assert MAIN_PASSWORD not in result.stdout + result.stderr

    # 6. Everything up.
    site.run_step(6)

    # 7. The runbook's own checks pass, and the data is the old stack's.
    checks = site.run_step(7)
    assert checks.stdout.split()[:1] == ["1"], checks.stdout
    assert site.sql(site.new, "postgresql", "select string_agg(agent, ',' order by id) from calls", MAIN_PASSWORD).stdout.split() == ["ana,bruno,carla"]
    assert "dialer-postgresql" not in site.compose(site.new, "config", "--services").stdout.split()
    assert f"{PROJECT}_{RETIRED_VOLUME}" in site.volumes(), "the retired dialer database's volume is left as it was"
    wrong = site.sql(site.new, "postgresql", "select 1", "not-the-password")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, "the stand-in must check passwords"
    for (service, path), content in FILES.items():
        seen = site.compose(site.new, "exec", "-T", service, "cat", path, check=False)
        assert content in seen.stdout, f"{service} does not see {path} from the old volume: {seen.stderr}"
    mounted = {mount["Name"] for container in engine.inspect(*site.compose(site.new, "ps", "--quiet").stdout.split()) for mount in container["Mounts"] if mount.get("Name")}
    assert mounted == {f"{PROJECT}_{volume}" for volume in NEW_VOLUMES}
    assert not [name for name in engine.docker("volume", "ls", "--quiet").stdout.split() if name.startswith(f"{profile.project.name}_")], "no new volume"

    # The way back: the old stack on the same data, its .env's passwords in force again.
    site.run_step(8)
    assert site.sql(site.old, "dialer-postgresql", "select name from campaigns", DIALER_PLACEHOLDER).stdout.split() == ["cobranzas"]
    assert site.sql(site.old, "postgresql", "select count(*) from calls", MAIN_PASSWORD).stdout.split() == ["3"]
    assert len(site.blocks) == 9, "a new sh block in docs/migrating.md needs its step here"
