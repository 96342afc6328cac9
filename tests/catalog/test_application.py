"""omnigen/catalog/application.py against the application's own code (tests/reference/omnivoip-app/, MIT).

The generated deployment gives each component exactly the variables its code reads, under the
names it reads, and probes the ports and paths it serves. The facts are read out of the
component files themselves, so a contract table that drifts from the code fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from omnigen.catalog.application import APP_LISTEN, HEALTH_PATHS, SERVICE_ENV
from omnigen.catalog.services import catalog
from omnigen.formats.asteriskconf import conf_secret, parse_conf
from omnigen.formats.dotenv import as_dict, parse
from omnigen.inputs.profile import Secrets, load_secrets
from omnigen.loading import load_profile
from omnigen.pipeline import compile_profile
from omnigen.verify.deployment import load_deployment
from tests.conftest import EXAMPLES, ROOT, compile_example, fake_token

APP = ROOT / "tests" / "reference" / "omnivoip-app" / "components"
# Read by the generated startup command (Django's createsuperuser --noinput), not by the component's code.
STARTUP_VARIABLES = {"DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD"}
# Restated for people and the multi-host cross-checks; Asterisk reads no variables (docs/application.md).
ASTERISK_INFORMATIONAL = {"ACD_HOSTNAME", "ACD_RTP_PORT_MAX", "ACD_RTP_PORT_MIN", "ACD_SIP_PORT", "EXTERNAL_IP", "TZ"}


def _read(*parts: str) -> str:
    return APP.joinpath(*parts).read_text(encoding="utf-8")


def _decouple(text: str) -> set[str]:
    return set(re.findall(r"""config\(\s*['"]([A-Z0-9_]+)['"]""", text))


def _getenv(text: str) -> set[str]:
    return set(re.findall(r"""os\.(?:getenv|environ\.setdefault)\(\s*['"]([A-Z0-9_]+)['"]""", text))


BACKEND = _decouple(_read("backend/omnivoip/settings/base.py")) | _decouple(_read("backend/omnivoip/settings/production.py")) | _getenv(
    _read("backend/omnivoip/celery.py")
)
READS: dict[str, set[str]] = {
    "django-app": BACKEND | STARTUP_VARIABLES,
    "celery-worker": BACKEND,
    "celery-beat": BACKEND,
    "websockets": _getenv(_read("websockets/main.py")) | {"TZ"},
    "dialer-api": _getenv(_read("dialer/api/main.py")) | {"TZ"},
    "dialer-worker": _getenv(_read("dialer/worker/tasks.py")) | {"TZ"},
    "frontend": {"TZ"},
    "asterisk": ASTERISK_INFORMATIONAL,
}
# What each component cannot run correctly without: the code's default is localhost, a sample
# password or a development value (docs/application.md, the "req" rows).
REQUIRED: dict[str, set[str]] = {
    "django-app": {
        "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ALLOWED_HOSTS", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_HOST",
        "POSTGRES_PORT", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
        "ASTERISK_AMI_HOST", "ASTERISK_AMI_PORT", "ASTERISK_AMI_USER", "ASTERISK_AMI_SECRET", "ASTERISK_ARI_HOST", "ASTERISK_ARI_PORT",
        "ASTERISK_ARI_USER", "ASTERISK_ARI_PASSWORD", "S3_STORAGE_ENABLED", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "BUCKET_NAME",
        "MINIO_ENDPOINT",
    },
    "celery-worker": {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "POSTGRES_PASSWORD", "POSTGRES_HOST", "CELERY_BROKER_URL", "REDIS_HOST", "REDIS_PASSWORD"},
    "celery-beat": {"DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL"},
    "websockets": {"REDIS_URL"},
    "dialer-api": {"REDIS_URL", "BACKEND_URL", "ASTERISK_AMI_HOST", "ASTERISK_AMI_PORT", "ASTERISK_AMI_USER", "ASTERISK_AMI_SECRET"},
    "dialer-worker": {"REDIS_URL", "BACKEND_URL", "DIALER_API_URL"},
}  # fmt: skip


def test_the_reference_files_say_what_the_contract_restates() -> None:
    # Facts read back from the code, so catalog/application.py cannot drift from it silently.
    assert "--bind\", \"0.0.0.0:8000\"" in _read("backend/Dockerfile") and APP_LISTEN["django-app"] == 8000
    assert "\"--port\", \"8000\"" in _read("websockets/Dockerfile") and APP_LISTEN["websockets"] == 8000
    assert "\"--port\", \"8001\"" in _read("dialer/api/Dockerfile") and APP_LISTEN["dialer-api"] == 8001
    assert re.search(r"^\s*listen 80;", _read("frontend/nginx.conf"), re.M) and APP_LISTEN["frontend"] == 80
    assert '@app.get("/health")' in _read("websockets/main.py") and HEALTH_PATHS["websockets"] == "/health"
    assert '@app.get("/health")' in _read("dialer/api/main.py") and HEALTH_PATHS["dialer-api"] == "/health"
    assert "location /health" in _read("frontend/nginx.conf") and HEALTH_PATHS["frontend"] == "/health"
    assert "redis-cli" in _read("backend/docker-entrypoint.sh") and "redis-tools" not in _read("backend/Dockerfile")
    assert "'admin', 'admin@omnivoip.com', 'admin'" in _read("backend/docker-entrypoint.sh")


@pytest.mark.parametrize("service", sorted(SERVICE_ENV))
def test_every_variable_given_is_one_the_component_reads_and_none_it_needs_is_missing(service: str) -> None:
    given = {ref.name for ref in SERVICE_ENV[service]}
    assert given <= READS[service], f"{service} is given variables its code never reads: {sorted(given - READS[service])}"
    assert REQUIRED.get(service, set()) <= given, f"{service} lacks variables its code needs: {sorted(REQUIRED[service] - given)}"


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda path: path.stem)
def test_generated_clients_log_in_with_the_users_and_secrets_asterisk_has(profile: Path) -> None:
    compiled = compile_example(profile)
    files = compiled.files
    deployment = load_deployment(["docker-compose.yml"], lambda path: files[path], lambda _: [])
    env = compiled.plan.env_map
    manager = parse_conf(files["asterisk/manager.conf"])
    ari = parse_conf(files["asterisk/ari.conf"])
    for service, user_key, secret_key in (
        ("django-app", "ASTERISK_AMI_USER", "ASTERISK_AMI_SECRET"),
        ("celery-worker", "ASTERISK_AMI_USER", "ASTERISK_AMI_SECRET"),
        ("dialer-api", "ASTERISK_AMI_USER", "ASTERISK_AMI_SECRET"),
    ):
        given = deployment.service_env(service)
        section = manager.section(given[user_key])
        assert section is not None and section.get("secret").value == given[secret_key]  # type: ignore[union-attr]
        assert given["ASTERISK_AMI_HOST"] == "asterisk" and given["ASTERISK_AMI_PORT"] == manager.section("general").get("port").value  # type: ignore[union-attr]
    # The backend and the dialer have users of their own, with different secrets.
    assert env["ASTERISK_AMI_USER"] != env["DIALER_AMI_USER"] and env["ASTERISK_AMI_SECRET"] != env["DIALER_AMI_SECRET"]
    ari_user = ari.section(env["ASTERISK_ARI_USER"])
    assert ari_user is not None and ari_user.get("password").value == env["ASTERISK_ARI_PASSWORD"]  # type: ignore[union-attr]
    # Never published; only the compose network (and loopback) may log in.
    assert not any(port.container_start in (5038, 8088) for port in compiled.plan.all_published)
    assert [setting.value for setting in section.get_all("permit")] == ["127.0.0.1/32", compiled.plan.network.subnet]


HOSTILE = "p a$s#w@o/r%d'\"\\;x[y]=>z"


def test_secrets_with_every_awkward_character_survive_manager_conf_ari_conf_and_env() -> None:
    profile = load_profile(ROOT / "profiles" / "lan-office.toml", {})
    secrets = Secrets(ami_password=HOSTILE, dialer_ami_password=HOSTILE + "2", ari_password=HOSTILE + "3", redis_password=HOSTILE)
    compiled = compile_profile(profile, secrets, fake_token)  # verify (OV216 included) runs inside
    files = compiled.files
    assert parse_conf(files["asterisk/manager.conf"]).section("omnivoip").get("secret").value == HOSTILE  # type: ignore[union-attr]
    assert parse_conf(files["asterisk/ari.conf"]).section("omnivoip").get("password").value == HOSTILE + "3"  # type: ignore[union-attr]
    env = as_dict(parse(files[".env"]))
    assert (env["ASTERISK_AMI_SECRET"], env["DIALER_AMI_SECRET"], env["ASTERISK_ARI_PASSWORD"]) == (HOSTILE, HOSTILE + "2", HOSTILE + "3")


@pytest.mark.parametrize("bad", [" leading", "trailing ", ">object", "line\nbreak", "tab\there"])
def test_a_secret_asterisk_cannot_read_back_is_refused_at_the_sidecar(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Asterisk cannot read this secret back"):
        Secrets(ami_password=bad)
    with pytest.raises(ValueError):
        conf_secret(bad)


def test_conf_secret_escapes_only_the_comment_character() -> None:
    assert conf_secret("a;b\\;c") == "a\\;b\\\\;c"
    assert parse_conf(f"[u]\nsecret={conf_secret('a;b')}\n").section("u").get("secret").value == "a;b"  # type: ignore[union-attr]


def test_a_sidecar_from_schema_1_still_loads_and_is_left_as_it_was(tmp_path: Path) -> None:
    sidecar = tmp_path / "site.secrets.toml"
    text = 'postgres_password = "kept"\ndialer_postgres_password = "retired"\ndialer_password = "retired too"\n'
    sidecar.write_text(text)
    loaded = load_secrets(sidecar)
    assert loaded.postgres_password == "kept"
    assert "retired" not in loaded.model_dump_json()
    assert sidecar.read_text() == text


def test_the_dialer_api_entrypoint_turns_the_code_pydantic_2_refuses_into_code_it_accepts(tmp_path: Path) -> None:
    """The generated entrypoint's own shell text, run by /bin/sh on the component's main.py (the
    image's WORKDIR), writes a copy whose Field constraints pydantic 2 accepts and enforces."""
    import ast
    import subprocess

    import pydantic

    plan = compile_example(ROOT / "profiles" / "vps-nat.toml").plan
    startup = plan.startup["dialer-api"]
    shell, flag, script, name = startup.entrypoint
    assert (shell, flag, name) == ("/bin/sh", "-c", "dialer-api")
    workdir = tmp_path / "app"
    workdir.mkdir()
    (workdir / "main.py").write_text((APP / "dialer" / "api" / "main.py").read_text())
    copy = tmp_path / "patched.py"
    # The script writes /tmp/main.py and then runs its arguments; aim both at this test's folder instead.
    subprocess.run([shell, flag, script.replace("/tmp/main.py", str(copy)), name, "true"], cwd=workdir, check=True)
    assert "--app-dir" in startup.command and startup.command[startup.command.index("--app-dir") + 1] == "/tmp"

    with pytest.raises(pydantic.errors.PydanticUserError, match="regex"):  # why the workaround exists
        pydantic.create_model("Refused", phone_number=(str, pydantic.Field(..., regex=r"^\+?[0-9]{10,15}$")))  # type: ignore[call-overload]
    fields = [
        node for node in ast.walk(ast.parse(copy.read_text())) if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Field"
    ]
    constrained = [keyword for field in fields for keyword in field.keywords if keyword.arg in {"regex", "pattern"}]
    assert constrained and all(keyword.arg == "pattern" for keyword in constrained)
    for keyword in constrained:
        model = pydantic.create_model("Contact", value=(str, pydantic.Field(..., pattern=ast.literal_eval(keyword.value))))
        model(value="+573001234567")
        with pytest.raises(pydantic.ValidationError):
            model(value="not a phone number")


# What the settings overlay is loaded over in these tests: the image's own production.py would need Django
# and the whole backend; this one holds what the overlay must keep or replace, as base.py writes it.
_PRODUCTION_STAND_IN = """
DEBUG = False
ALLOWED_HOSTS = ["voip.example.com"]
CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}}}
"""
# python-decouple's config() as the backend uses it: the variable from the environment, or its default.
_DECOUPLE_STAND_IN = """
import os
_MISSING = object()
def config(name, default=_MISSING, cast=None):
    if name not in os.environ and default is _MISSING:
        raise KeyError(name)
    value = os.environ.get(name, default)
    return cast(value) if cast else value
"""
_LOAD_OVERLAY = """
import importlib.metadata, json, sys
if sys.argv[1] == "missing":
    sys.modules["pkg_resources"] = None  # an image whose setuptools no longer ships pkg_resources: import fails
import omnivoip.settings.omnigen as settings
import pkg_resources
try:
    pkg_resources.get_distribution("no-such-distribution-anywhere")
    missing = "found"
except pkg_resources.DistributionNotFound:
    missing = "DistributionNotFound"
print(json.dumps({
    "caches": settings.CACHES, "debug": settings.DEBUG, "allowed_hosts": settings.ALLOWED_HOSTS,
    "pip": pkg_resources.get_distribution("pip").version == importlib.metadata.version("pip"),
    "missing": missing, "shim": getattr(pkg_resources, "__file__", None) is None,
}))
"""


@pytest.mark.parametrize("pkg_resources", ["missing", "installed"])
def test_the_backend_settings_overlay_replaces_the_cache_and_gives_simplejwt_pkg_resources(pkg_resources: str, tmp_path: Path) -> None:
    """The generated backend/omnigen_settings.py, imported as the image imports it (omnivoip.settings.omnigen
    beside production.py), with the hard secret the sidecar may hold."""
    import json
    import os
    import subprocess
    import sys

    compiled = compile_example(ROOT / "profiles" / "vps-nat.toml")
    settings = compiled.plan.backend_settings
    assert settings.target == "/app/omnivoip/settings/omnigen.py"
    # Every process that loads the backend's settings mounts the overlay and is told to load it.
    loaders = {service for service, refs in SERVICE_ENV.items() if any(ref.name == "DJANGO_SETTINGS_MODULE" for ref in refs)}
    assert loaders == {"celery-beat", "celery-worker", "django-app"}
    assert {entry.name for entry in catalog() if any(mount.target == settings.target for mount in entry.mounts)} == loaders
    assert {ref.literal for service in loaders for ref in SERVICE_ENV[service] if ref.name == "DJANGO_SETTINGS_MODULE"} == {
        "omnivoip.settings.omnigen"
    }
    package = tmp_path / "app" / "omnivoip" / "settings"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "production.py").write_text(_PRODUCTION_STAND_IN)
    (package / "omnigen.py").write_text(compiled.files[settings.file])
    (tmp_path / "app" / "decouple.py").write_text(_DECOUPLE_STAND_IN)
    if pkg_resources == "installed":  # an older setuptools' pkg_resources, as far as simplejwt uses it
        (tmp_path / "app" / "pkg_resources.py").write_text(
            "import importlib.metadata, types\n"
            "class DistributionNotFound(Exception): ...\n"
            "def get_distribution(name):\n"
            "    try:\n"
            "        return types.SimpleNamespace(version=importlib.metadata.version(name))\n"
            "    except importlib.metadata.PackageNotFoundError:\n"
            "        raise DistributionNotFound(name) from None\n"
        )
    hard = "p$a #s@w/o%r'd\"x\\ y z"
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDIS_")}
    env["PYTHONPATH"] = str(tmp_path / "app")

    def load(redis_env: dict[str, str]) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-c", _LOAD_OVERLAY, pkg_resources], capture_output=True, text=True, env={**env, **redis_env}, check=False
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    # celery-beat is given no Redis variables: the overlay loads with base.py's defaults, as base.py does.
    assert load({})["caches"]["default"]["LOCATION"] == "redis://localhost:6379/1"
    loaded = load({"REDIS_HOST": "redis", "REDIS_PORT": "6379", "REDIS_PASSWORD": hard})
    # Django's own Redis backend (no django_redis), the backend's cache database, the password byte for byte.
    assert loaded["caches"] == {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://redis:6379/1",
            "OPTIONS": {"password": hard},
        }
    }
    assert (loaded["debug"], loaded["allowed_hosts"]) == (False, ["voip.example.com"]), "everything else is production's"
    # simplejwt's one call: get_distribution(name).version, DistributionNotFound for what is not installed.
    assert loaded["pip"] is True and loaded["missing"] == "DistributionNotFound"
    assert loaded["shim"] is (pkg_resources == "missing"), "a real pkg_resources is left alone"
