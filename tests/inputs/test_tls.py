"""The certificate nginx serves: generated once beside the profile, or the operator's files, checked; expiry warnings."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from omnigen.catalog.services import NGINX_UID
from omnigen.inputs import tls
from omnigen.pipeline import build
from tests.conftest import ROOT, fake_token, run_cli

NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def _profile(tmp_path: Path, extra: str = "", network: str = 'public_ip = "203.0.113.10"\nbind_ip = "0.0.0.0"') -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'schema_version = 2\n[build]\nprebuilt = true\n[project]\nname = "site"\ndomain = "voip.example.com"\n[network]\n{network}\n[capacity]\nconcurrent_calls = 5\n{extra}')
    return path


def _leaf(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(text.encode())[0]


def test_self_signed_is_generated_once_beside_the_profile_and_lands_where_nginx_reads_it(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    out = tmp_path / "out"
    first = build(profile, out, environ={}, token=fake_token, clock=lambda: NOW)
    sidecar = tmp_path / "site.tls"
    chain, key = (out / "certs" / "fullchain.pem").read_text(), (out / "certs" / "privkey.pem").read_text()
    assert chain == (sidecar / "fullchain.pem").read_text() and key == (sidecar / "privkey.pem").read_text()
    assert first.tls is not None and first.tls.generated
    leaf = _leaf(chain)
    # SANs: the domain and public_ip; bind_ip 0.0.0.0 is skipped.
    assert tls.certificate_names(leaf) == ("voip.example.com", "203.0.113.10")
    assert leaf.not_valid_after_utc == NOW + datetime.timedelta(days=tls.SELF_SIGNED_DAYS)
    assert stat.S_IMODE(os.stat(out / "certs" / "privkey.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sidecar / "privkey.pem").st_mode) == 0o600 and stat.S_IMODE(os.stat(sidecar).st_mode) == 0o700
    if os.geteuid() == 0:  # a build as root gives the key to nginx's user in its container
        assert os.stat(out / "certs" / "privkey.pem").st_uid == NGINX_UID
    assert 'ssl_certificate /etc/nginx/certs/fullchain.pem;' in (out / "nginx" / "nginx.conf").read_text()
    assert '"./certs:/etc/nginx/certs:ro"' in (out / "docker-compose.yml").read_text()

    # Rebuilt a year later: the same pair (never regenerated while it is valid and names the same hosts).
    again = build(profile, out, environ={}, token=fake_token, clock=lambda: NOW + datetime.timedelta(days=365))
    assert again.tls is not None and not again.tls.generated
    assert (out / "certs" / "fullchain.pem").read_text() == chain
    assert run_cli("check", str(profile), "-o", str(out)).returncode == 0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("expired", "past its end"),
        ("removed", "the sidecar is gone"),
        ("renamed", "the profile names another domain"),
    ],
)
def test_the_self_signed_pair_is_generated_again_only_when_it_cannot_serve(tmp_path: Path, change: str, why: str) -> None:
    profile = _profile(tmp_path)
    out = tmp_path / "out"
    build(profile, out, environ={}, token=fake_token, clock=lambda: NOW)
    old = (out / "certs" / "fullchain.pem").read_text()
    when = NOW
    if change == "expired":
        when = NOW + datetime.timedelta(days=tls.SELF_SIGNED_DAYS + 1)
    elif change == "removed":
        for name in ("fullchain.pem", "privkey.pem"):
            (tmp_path / "site.tls" / name).unlink()
    else:
        profile.write_text(profile.read_text().replace("voip.example.com", "cc.example.org"))
    result = build(profile, out, environ={}, token=fake_token, clock=lambda: when)
    assert result.tls is not None and result.tls.generated, why
    assert (out / "certs" / "fullchain.pem").read_text() != old


def _pair(folder: Path, names: tuple[str, ...], now: datetime.datetime) -> tuple[Path, Path]:
    chain, key = tls.generate_self_signed(names, now)
    (folder / "chain.pem").write_text(chain)
    (folder / "key.pem").write_text(key)
    return folder / "chain.pem", folder / "key.pem"


FILES = '[tls]\nmode = "files"\ncertificate = "chain.pem"\nkey = "key.pem"\n'


def test_the_operators_files_are_checked_and_copied(tmp_path: Path) -> None:
    profile = _profile(tmp_path, FILES)
    chain, _ = _pair(tmp_path, ("*.example.com",), datetime.datetime.now(datetime.UTC))
    out = tmp_path / "out"
    result = run_cli("build", str(profile), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "certs" / "fullchain.pem").read_text() == chain.read_text()
    assert not (tmp_path / "site.tls").exists()
    assert run_cli("check", str(profile), "-o", str(out)).returncode == 0
    # A renewed file changes what build would write: check's fast path must not miss it.
    _pair(tmp_path, ("voip.example.com",), datetime.datetime.now(datetime.UTC))
    stale = run_cli("check", str(profile), "-o", str(out))
    assert stale.returncode == 1 and "certs/fullchain.pem" in stale.stdout


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("other-key", "the private key does not match the certificate"),
        ("expired", "the certificate expired on"),
        ("other-name", "the certificate does not cover project.domain voip.example.com (it names other.example.net)"),
        ("garbage", "the certificate chain is not PEM certificates"),
        ("missing", "cannot read"),
    ],
)
def test_bad_operator_files_are_refused_with_the_reason(tmp_path: Path, damage: str, reason: str) -> None:
    profile = _profile(tmp_path, FILES)
    now = datetime.datetime.now(datetime.UTC)
    names = ("other.example.net",) if damage == "other-name" else ("voip.example.com",)
    chain, key = _pair(tmp_path, names, now - datetime.timedelta(days=900) if damage == "expired" else now)
    if damage == "other-key":
        key.write_text(tls.generate_self_signed(names, now)[1])
    elif damage == "garbage":
        chain.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    elif damage == "missing":
        chain.unlink()
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr and f"{profile}:" in result.stderr and "tls." in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_check_and_doctor_warn_thirty_days_before_expiry(tmp_path: Path) -> None:
    profile = _profile(tmp_path, FILES)
    now = datetime.datetime.now(datetime.UTC)
    # Valid for 20 more days.
    _pair(tmp_path, ("voip.example.com",), now - datetime.timedelta(days=tls.SELF_SIGNED_DAYS - 20))
    out = tmp_path / "out"
    assert run_cli("build", str(profile), "-o", str(out)).returncode == 0
    checked = run_cli("check", str(profile), "-o", str(out))
    assert checked.returncode == 0
    assert "warning: " in checked.stderr and "the certificate expires on" in checked.stderr and "(in 19 days)" in checked.stderr
    doctor = run_cli("doctor", str(profile), "--root", str(ROOT / "tests" / "doctor_fixtures" / "vps"))
    assert "note: certificate: " in doctor.stdout and "renew it" in doctor.stdout


def test_a_fresh_certificate_draws_no_warning() -> None:
    chain, _ = tls.generate_self_signed(("a.example.com",), NOW)
    assert tls.expiry_warning(chain, NOW + datetime.timedelta(days=tls.SELF_SIGNED_DAYS - 31), "x") is None
    assert tls.expiry_warning(chain, NOW + datetime.timedelta(days=tls.SELF_SIGNED_DAYS - 29), "x") is not None


@pytest.mark.parametrize(
    ("names", "host", "covered"),
    [(("a.example.com",), "a.example.com", True), (("*.example.com",), "a.example.com", True), (("*.example.com",), "a.b.example.com", False), (("*.example.com",), "example.com", False), (("A.Example.com",), "a.example.com.", True)],
)
def test_wildcards_cover_one_label(names: tuple[str, ...], host: str, covered: bool) -> None:
    assert tls.covers(names, host) is covered


def test_acme_needs_a_domain_and_an_email(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('schema_version = 2\n[build]\nprebuilt = true\n[project]\nname = "p"\n[network]\nbind_ip = "192.168.1.2"\n[capacity]\nconcurrent_calls = 2\n[tls]\nmode = "acme"\nacme_email = "a@example.com"\n')
    result = run_cli("build", str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "set project.domain" in result.stderr
    path.write_text(path.read_text().replace('acme_email = "a@example.com"\n', "").replace('name = "p"', 'name = "p"\ndomain = "p.example.com"'))
    result = run_cli("build", str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "tls.acme_email" in result.stderr
