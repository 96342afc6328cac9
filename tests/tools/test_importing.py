"""omnigen/tools/importing.py: a hand-written deployment -> profile + sidecar + notes.

The reference deployment (tests/reference/omnivoip-v2, the user's v2 files in their
real layout) and variants of it written to a temporary folder, one defect or fact at
a time.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from omnigen.commands.import_ import compose_files
from omnigen.errors import ProfileError
from omnigen.inputs.profile import SECRET_NAMES, Secrets
from omnigen.loading import validate_profile
from omnigen.tools.importing import Imported, ImportOptions, ImportRefused, import_deployment, render_report
from omnigen.tools.lint import list_dir, read_text
from omnigen.verify.deployment import load_deployment
from tests.conftest import ROOT, fake_token

REFERENCE = ROOT / "tests" / "reference" / "omnivoip-v2"
PLACEHOLDERS = (
    "CHANGE_THIS_PASSWORD_123",
    "dialer456_CHANGE_ME",
    "CHANGE_THIS_REDIS_PASSWORD",
    "s3minio123_CHANGE_ME",
    "django-insecure-CHANGE-THIS-SECRET-KEY-IN-PRODUCTION",
    "5_MeO_DMT_CHANGE_ME",
    "0mn1d14l3r765_CHANGE_ME",
)


def import_from(root: Path, **options: object) -> Imported:
    deployment = load_deployment(compose_files(root), read_text, list_dir, display=lambda path: os.path.relpath(path, root))
    return import_deployment(
        deployment,
        ImportOptions(**options),  # type: ignore[arg-type]
        origin=str(root),
        fallback_name=root.name,
        secrets_name="omnivoip.secrets.toml",
        token=fake_token,
    )


@pytest.fixture(scope="module")
def reference() -> Imported:
    return import_from(REFERENCE, public_ip="203.0.113.10")


@pytest.fixture
def variant(tmp_path: Path) -> Path:
    """A writable copy of the reference deployment."""
    target = tmp_path / "omnivoip-v2"
    shutil.copytree(REFERENCE, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def subjects(imported: Imported, kind: str) -> list[str]:
    return [note.subject for note in imported.notes_of(kind)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The reference deployment


def test_the_range_is_sized_to_the_calls_it_really_carries(reference: Imported) -> None:
    profile, rtp = reference.profile, reference.compiled.plan.rtp
    # 10000-10100 is 101 ports: 50 RTP+RTCP pairs = 50 channels = 25 bridged calls, not the 50 the v2 notes claim.
    assert profile.capacity.concurrent_calls == 25
    assert (profile.rtp.start, rtp.start, rtp.end) == (10000, 10000, 10099)
    assert profile.capacity.headroom_percent == 0
    (note,) = [note for note in reference.notes if note.subject == "capacity.concurrent_calls"]
    assert note.kind == "changed"
    assert "10000-10100 is 101 ports" in note.message and "10000-10099" in note.message and "10100 is dropped" in note.message
    assert note.source == "prod-env/docker-compose.yml:249"


def test_values_the_model_accepts_are_kept_with_their_source(reference: Imported) -> None:
    profile = reference.profile
    assert profile.project.name == "omnivoip"
    assert profile.project.timezone == "America/Argentina/Cordoba"
    assert str(profile.network.subnet) == "10.22.22.0/24"
    assert (profile.database.name, profile.database.user) == ("omnivoip", "omnivoip")
    assert (profile.workers.celery, profile.workers.celery_concurrency, profile.workers.dialer) == (2, 4, 5)
    assert (profile.ports.sip, profile.ports.http, profile.ports.https) == (5060, 80, 443)
    assert profile.images.postgres == "postgres:15-alpine"
    kept = {note.subject: note for note in reference.notes_of("kept")}
    assert kept["project.timezone"].source == "prod-env/.env:15 TZ"
    assert kept["workers.celery"].source == "prod-env/.env:337 WORKER_REPLICAS"
    # The written profile says where each value came from, and reads back as the same profile.
    text = reference.profile_text
    assert 'timezone = "America/Argentina/Cordoba" # from prod-env/.env:15 TZ' in text
    assert validate_profile(tomllib.loads(text), file="p", text=text, env={}) == profile


def test_published_databases_are_closed(reference: Imported) -> None:
    closed = subjects(reference, "closed")
    for published in ("postgresql 5432:5432", "redis 6379:6379", "minio 9000:9000", "minio 9001:9001"):
        assert published in closed
    # Services no component uses are dropped with their ports (docs/application.md).
    dropped = {note.subject: note.message for note in reference.notes_of("dropped")}
    assert "no dialer component opens a database" in dropped["service dialer-postgresql"]
    assert "Gearman" in dropped["service gearman"]
    assert "asterisk 5038:5038/tcp" in closed  # AMI
    generated_ports = {port.service for port in reference.compiled.plan.all_published}
    assert generated_ports == {"asterisk", "nginx"}
    assert reference.profile.network.expose_internal is False


def test_placeholders_are_replaced_by_generated_secrets(reference: Imported) -> None:
    generated = {note.subject: note.message for note in reference.notes_of("generated")}
    assert set(generated) == set(SECRET_NAMES)
    assert "placeholder" in generated["postgres_password"]
    assert generated["dialer_ami_password"] and generated["ari_password"]  # the application's logins, new
    sidecar = tomllib.loads(reference.secrets_text)
    assert set(sidecar) == set(SECRET_NAMES)
    Secrets.model_validate(sidecar)  # no placeholder survives the model's own check
    everything = reference.secrets_text + "".join(reference.compiled.files.values()) + reference.profile_text
    for placeholder in PLACEHOLDERS:
        assert placeholder not in everything


def test_defects_are_reported_fixed(reference: Imported) -> None:
    changes = {change.key: change for change in reference.env_changes}
    assert "DIALER_POSTGRES_PORT" not in changes, "the dialer database is gone, with the port the original told it"
    assert (changes["ACD_RTP_PORT_MAX"].old, changes["ACD_RTP_PORT_MAX"].new) == ("10100", "10099")
    fixed = subjects(reference, "fixed")
    assert {"rtp.conf mount", "pjsip.conf mount", "pjsip external_media_address"} <= set(fixed)
    # Every non-secret .env value that changes has its own reason, not the generic one.
    for change in reference.env_changes:
        if not change.secret:
            assert change.reason != "computed from the profile", change.key


def test_unpinned_and_root_images_are_replaced(reference: Imported) -> None:
    changed = {note.subject: note.message for note in reference.notes_of("changed")}
    assert "'minio/minio:latest' is refused" in changed["images.minio"]
    assert "runs as root" in changed["images.nginx"]
    assert reference.profile.images.minio != "minio/minio:latest"
    assert "unprivileged" in reference.profile.images.nginx


def test_what_a_profile_cannot_hold_is_listed_for_the_operator(reference: Imported) -> None:
    manual = {note.subject: note.message for note in reference.notes_of("manual")}
    assert "agent1000" in manual["pjsip.conf sections"] and "trunk-provider" in manual["pjsip.conf sections"]
    assert "stunaddr" in manual["rtp.conf settings"]
    assert "../../components/backend" in manual["build.backend"]
    assert "SESSION_COOKIE_AGE" in manual["django-app environment"]


def test_a_site_built_from_source_keeps_building_from_a_checkout(reference: Imported) -> None:
    assert not reference.profile.build.prebuilt


def test_a_site_that_pulls_its_images_keeps_pulling_them(variant: Path) -> None:
    compose = variant / "prod-env" / "docker-compose.yml"
    text = re.sub(r"^    build:\n      context: .*\n      dockerfile: Dockerfile\n", "", compose.read_text(), flags=re.M)
    compose.write_text(re.sub(r"^    # image: ", "    image: ", text, flags=re.M))
    imported = import_from(variant, public_ip="203.0.113.10")
    assert imported.profile.build.prebuilt, "building from a checkout would change what the site runs"


def test_the_generated_deployment_passes_the_rules_the_original_fails(reference: Imported) -> None:
    assert any(finding.severity == "error" for finding in reference.original_findings)
    # compile_profile ran the verify stage; the same rules on the output find nothing.
    from omnigen.verify.deployment import deployment_from_memory
    from omnigen.verify.rules import RuleContext, run_rules

    report = run_rules(deployment_from_memory(reference.compiled.files), RuleContext(calls=reference.profile.capacity.concurrent_calls))
    assert report.findings == []


def test_report_lists_every_note_and_masks_secrets(reference: Imported) -> None:
    report = render_report(reference, profile_path="omnivoip.toml", secrets_path="omnivoip.secrets.toml")
    for note in reference.notes:
        assert note.render() in report
    for value in tomllib.loads(reference.secrets_text).values():
        assert value not in report
    assert "service gearman: no OmniVoIP component submits or runs Gearman jobs" in report


def test_import_is_deterministic(reference: Imported) -> None:
    again = import_from(REFERENCE, public_ip="203.0.113.10")
    assert (again.profile_text, again.secrets_text, again.compiled.files) == (reference.profile_text, reference.secrets_text, reference.compiled.files)


# ---------------------------------------------------------------------------
# Variants, one fact at a time


def test_no_address_to_advertise_is_refused_with_the_option_to_pass() -> None:
    with pytest.raises(ImportRefused) as refused:
        import_from(REFERENCE)
    message = refused.value.render()
    assert "cannot tell which address phones reach" in message
    assert "OML_HOSTNAME (prod-env/.env:8) is empty" in message and "'${EXTERNAL_IP}'" in message
    assert "--public-ip" in message and "--bind-ip" in message


def test_the_host_address_in_the_env_is_used(variant: Path) -> None:
    edit(variant / "prod-env" / ".env", "OML_HOSTNAME=\n", "OML_HOSTNAME=192.168.1.10\n")
    imported = import_from(variant)
    # PUBLIC_IP=${OML_HOSTNAME}: the address phones reach; ports stay published on all interfaces.
    assert str(imported.profile.network.public_ip) == "192.168.1.10"
    assert str(imported.profile.network.bind_ip) == "0.0.0.0"
    assert imported.compiled.plan.network.advertised_ip == "192.168.1.10"


def test_bind_ip_from_ports_published_on_one_address(variant: Path) -> None:
    compose = variant / "prod-env" / "docker-compose.yml"
    for entry in ('"5060:5060/udp"', '"5060:5060/tcp"', '"5061:5061/tcp"', '"10000-10100:10000-10100/udp"', '"8088:8088/tcp"', '"8089:8089/tcp"', '"5038:5038/tcp"'):
        edit(compose, entry, '"192.168.1.10:' + entry[1:])
    imported = import_from(variant)
    assert str(imported.profile.network.bind_ip) == "192.168.1.10"
    assert imported.profile.network.public_ip is None


def test_forbidden_settings_are_dropped_with_their_lines(variant: Path) -> None:
    compose = variant / "prod-env" / "docker-compose.yml"
    edit(compose, "    #userns_mode: \"host\"\n    environment:\n      POSTGRES_DB: ${POSTGRES_DB}", "    userns_mode: host\n    privileged: true\n    environment:\n      POSTGRES_DB: ${POSTGRES_DB}")
    edit(compose, "    # Removido cap_add y security_opt por permisos\n", "    cap_add: [NET_ADMIN]\n    security_opt: [\"seccomp:unconfined\"]\n    sysctls:\n      net.ipv4.ip_unprivileged_port_start: 0\n    ipc: private\n")
    imported = import_from(variant, public_ip="203.0.113.10")
    dropped = {note.subject: note for note in imported.notes_of("dropped")}
    assert dropped["postgresql userns_mode"].source == "prod-env/docker-compose.yml:6"
    assert dropped["postgresql privileged"].source == "prod-env/docker-compose.yml:7"
    assert {"asterisk cap_add", "asterisk security_opt", "asterisk sysctls"} <= set(dropped)
    assert "asterisk ipc" not in dropped, "a private IPC namespace is what the generated stack has too"
    services = yaml.safe_load(imported.compiled.files["docker-compose.yml"])["services"]
    for name, service in services.items():
        assert not {"privileged", "userns_mode", "sysctls", "network_mode"} & set(service), name
        assert service.get("cap_add", []) == list(imported.compiled.plan.cap_add.get(name, ())), name
        assert service["security_opt"] == ["no-new-privileges:true"], name


def test_a_real_secret_is_kept_and_never_printed(variant: Path) -> None:
    secret = "Zq7#v@Lp/2:kW9x$"
    edit(variant / "prod-env" / ".env", "REDIS_PASSWORD=CHANGE_THIS_REDIS_PASSWORD", f"REDIS_PASSWORD='{secret}'")
    imported = import_from(variant, public_ip="203.0.113.10")
    assert tomllib.loads(imported.secrets_text)["redis_password"] == secret
    assert "redis_password" in subjects(imported, "kept")
    report = render_report(imported, profile_path="p.toml", secrets_path="p.secrets.toml")
    assert secret not in report and secret not in imported.profile_text
    # ...and reaches the services percent-encoded inside URLs.
    assert "Zq7%23v%40Lp%2F2%3AkW9x%24" in imported.compiled.plan.env_map["CELERY_BROKER_URL"]


def test_an_odd_range_start_is_made_even(variant: Path) -> None:
    compose = variant / "prod-env" / "docker-compose.yml"
    edit(compose, '"10000-10100:10000-10100/udp"', '"10001-10100:10001-10100/udp"')
    imported = import_from(variant, public_ip="203.0.113.10")
    assert imported.profile.rtp.start == 10002
    assert imported.compiled.plan.rtp.end <= 10100
    assert any(note.subject == "rtp.start" and "10001 -> 10002" in note.message for note in imported.notes)


def test_calls_option_resizes_the_range(variant: Path) -> None:
    imported = import_from(variant, public_ip="203.0.113.10", calls=40)
    assert imported.profile.capacity.concurrent_calls == 40
    assert imported.profile.capacity.headroom_percent == 20  # the model's default: --calls plans, it does not reproduce
    rtp = imported.compiled.plan.rtp
    assert any(note.subject == "RTP range" and f"becomes {rtp.start}-{rtp.end}" in note.message for note in imported.notes)


def test_mismatched_rtp_publishing_is_reported(variant: Path) -> None:
    edit(variant / "prod-env" / "docker-compose.yml", '"10000-10100:10000-10100/udp"', '"20000-20100:10000-10100/udp"')
    imported = import_from(variant, public_ip="203.0.113.10")
    assert "RTP publishing" in subjects(imported, "fixed")
    published = next(port for port in imported.compiled.plan.all_published if port.purpose == "RTP media")
    assert (published.host_start, published.host_end) == (published.container_start, published.container_end)


def test_range_drift_between_files_is_reported(variant: Path) -> None:
    edit(variant / "configs" / "asterisk" / "rtp.conf", "rtpend=10100", "rtpend=10200")
    imported = import_from(variant, public_ip="203.0.113.10")
    drift = [note for note in imported.notes if note.subject == "RTP range drift"]
    assert len(drift) == 1 and "rtp.conf says 10000-10200" in drift[0].message
    assert drift[0].source == "configs/asterisk/rtp.conf:5"


def test_an_invalid_project_name_is_made_valid(variant: Path) -> None:
    edit(variant / "prod-env" / ".env", "PROJECT_NAME=omnivoip", "PROJECT_NAME=OmniVoIP_Prod")
    imported = import_from(variant, public_ip="203.0.113.10")
    assert imported.profile.project.name == "omnivoip-prod"


def test_unparseable_compose_is_refused(variant: Path) -> None:
    (variant / "prod-env" / "docker-compose.yml").write_text("services:\n  a: [unclosed\n")
    with pytest.raises(ProfileError):
        import_from(variant, public_ip="203.0.113.10")


def test_no_rtp_range_needs_calls(variant: Path) -> None:
    edit(variant / "prod-env" / "docker-compose.yml", '      - "10000-10100:10000-10100/udp"\n', "")
    with pytest.raises(ImportRefused, match="--calls"):
        import_from(variant, public_ip="203.0.113.10")
    assert import_from(variant, public_ip="203.0.113.10", calls=10).profile.capacity.concurrent_calls == 10


def test_only_values_proven_harmless_are_printed(variant: Path) -> None:
    """Service variables the generated compose does not set are listed for the operator: a value is
    shown only when its name or its shape proves it harmless, and no URL shows its credentials."""
    hidden = {
        "DB_PWD": "Pw-4417-hidden",
        "APIKEY": "k3y-4417-hidden",
        "SMTP_AUTH": "smtp-4417-hidden",
        "AWS_ACCESS_KEY_ID": "AKIA4417HIDDEN",
        "DATABASE_URL": "postgres://app:db-4417-hidden@db.example.com:5432/app",
        "SENTRY_DSN": "https://dsn4417hidden@o0.ingest.sentry.io/4417",
        "WEBHOOK": "https://hooks.example.com/services/T0/B0/hook4417hidden",
        "MOTTO": "a sentence 4417 hidden",
        "PIN_PASSWORD": "441799",
    }
    shown = {"WORKER_COUNT": "4", "FEATURE_X": "true", "SMTP_HOST": "smtp.example.com", "METRICS_ADDRESS": "10.0.0.5:9100", "APP_LOG_LEVEL": "warning"}
    lines = "".join(f"      {key}: {value!r}\n" for key, value in {**hidden, **shown}.items())
    edit(variant / "prod-env" / "docker-compose.yml", "      CELERY_BROKER_URL: ${CELERY_BROKER_URL}\n    networks:", f"      CELERY_BROKER_URL: ${{CELERY_BROKER_URL}}\n{lines}    networks:")
    imported = import_from(variant, public_ip="203.0.113.10")
    report = render_report(imported, profile_path="p.toml", secrets_path="p.secrets.toml")
    assert "celery-beat environment" in report
    assert "hidden" not in report and "441799" not in report
    for key in hidden:
        assert f"{key}=***" in report or f"{key}='" in report, key
    assert "SENTRY_DSN=***" in report
    assert "DATABASE_URL='postgres://***@db.example.com:5432/***'" in report  # a URL under an unknown name: scheme and host
    assert "WEBHOOK='https://hooks.example.com/***'" in report
    for key, value in shown.items():
        assert f"{key}={value!r}" in report


def test_urls_in_changed_env_values_lose_their_credentials(variant: Path) -> None:
    edit(variant / "prod-env" / ".env", "BUCKET_ENDPOINT_MINIO=http://${OML_HOSTNAME}", "BUCKET_ENDPOINT_MINIO=http://minio:minio-4417-pw@${OML_HOSTNAME}")
    imported = import_from(variant, public_ip="203.0.113.10")
    report = render_report(imported, profile_path="p.toml", secrets_path="p.secrets.toml")
    assert "BUCKET_ENDPOINT_MINIO: 'http://***@" in report
    assert "minio-4417-pw" not in report
