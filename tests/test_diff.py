"""omnigen diff: what build would change, with every secret masked."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import quote

import pytest
import tomlkit
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnigen.cli import main
from omnigen.formats.dotenv import encode_value
from omnigen.formats.redact import MASK
from omnigen.inputs.profile import PLACEHOLDER_PATTERN
from omnigen.pipeline import build
from omnigen.plan.plan import OUTPUTS
from tests.conftest import ROOT, compile_example, fake_token, make_fake_checkout, run_cli
from tests.faults import photograph

# What a diff of vps-nat shows besides secrets: keys, names, paths (a generated value that is part of it leaks nothing).
PUBLIC_TEXT = "\n".join(compile_example(ROOT / "profiles" / "vps-nat.toml").files.values()) + " diff omnigen stale: written by an earlier build"

# A rotated password full of characters that need encoding in URLs, .env and YAML.
ROTATED = 'n3w/p@ss:w0rd#$x"\\%41 end'


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.upper().startswith("OMNIGEN_"):
            monkeypatch.delenv(key)
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    build(profile, None, environ={}, token=fake_token)
    return profile


def diff(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["diff", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def all_spellings(value: str) -> set[str]:
    return {value, quote(value, safe=""), encode_value(value)[1:-1], json.dumps(value)[1:-1]}


def test_no_changes_is_exit_0_and_silent(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = diff(capsys, str(site))
    assert code == 0 and out == ""


def test_edit_is_shown_as_a_unified_diff(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rtp = site.parent / "out" / "vps-nat" / "asterisk" / "rtp.conf"
    rtp.write_text(rtp.read_text().replace("strictrtp=yes", "strictrtp=no"))
    code, out, _ = diff(capsys, site.name)  # as typed in the profile's folder: paths stay relative
    assert code == 1
    assert "--- a/out/vps-nat/asterisk/rtp.conf\n+++ b/out/vps-nat/asterisk/rtp.conf\n" in out
    assert re.search(r"^-strictrtp=no$", out, re.M) and re.search(r"^\+strictrtp=yes$", out, re.M)
    assert "(edited:" in out


def test_rotated_secret_is_masked_in_every_spelling(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sidecar = site.with_name("site.secrets.toml")
    old = tomllib.loads(sidecar.read_text())["redis_password"]
    sidecar.write_text(sidecar.read_text().replace(old, ROTATED.replace("\\", "\\\\").replace('"', '\\"')))
    assert tomllib.loads(sidecar.read_text())["redis_password"] == ROTATED
    before = photograph(site.parent)
    code, out, _ = diff(capsys, str(site))
    assert code == 1
    for line in ("-REDIS_PASSWORD", "+REDIS_PASSWORD", "-CELERY_BROKER_URL", "+CELERY_BROKER_URL"):
        assert f'{line}="{MASK}"' in out, line
    for secret in (old, ROTATED):
        for form in all_spellings(secret):
            assert form not in out, form
    assert photograph(site.parent) == before, "diff never writes"


def test_secret_hand_edited_into_env_is_masked_too(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = site.parent / "out" / "vps-nat" / ".env"
    env.write_text(env.read_text().replace('ASTERISK_AMI_SECRET="', 'ASTERISK_AMI_SECRET="typed-by-hand-'))
    manager = site.parent / "out" / "vps-nat" / "asterisk" / "manager.conf"
    manager.write_text(manager.read_text().replace("secret=", "secret=also-typed-", 1))
    code, out, _ = diff(capsys, str(site))
    assert code == 1 and "typed-by-hand" not in out and f'-ASTERISK_AMI_SECRET="{MASK}"' in out
    assert "also-typed" not in out


def test_missing_folder_shows_new_files_masked(site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = diff(capsys, str(site), "-o", str(tmp_path / "fresh"))
    assert code == 1
    # The generated configs, nginx's certificate pair and the firewall rules (and the ACME scripts,
    # the secrets/<service>.env files), each new.
    assert out.count("--- /dev/null") == out.count("+++ ") >= len(OUTPUTS) + 3
    assert "+-----BEGIN PRIVATE KEY-----" in out
    key = site.with_name("site.tls").joinpath("privkey.pem")
    if key.exists():
        body = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
        assert body and not any(line in out for line in body)
    secrets = tomllib.loads(site.with_name("site.secrets.toml").read_text())
    for value in secrets.values():
        for form in all_spellings(value):
            assert form not in out
    assert f'+POSTGRES_PASSWORD="{MASK}"' in out
    assert f'+CELERY_BROKER_URL="{MASK}"' in out.split("/secrets/django-app.env", 1)[1]
    assert f'+ASTERISK_AMI_SECRET="{MASK}"' in out.split("/secrets/django-app.env", 1)[1]


def test_missing_secrets_are_masked_and_not_written(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.with_name("site.secrets.toml").unlink()
    before = photograph(site.parent)
    code, out, err = diff(capsys, str(site))
    assert code == 1 and "build would generate them" in err
    assert f'+DJANGO_SECRET_KEY="{MASK}"' in out
    env_lines = [line for line in out.splitlines() if line.startswith("+") and "PASSWORD" in line]
    assert env_lines and all(MASK in line for line in env_lines)
    assert photograph(site.parent) == before


def test_loosened_env_mode_is_shown(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(site.parent / "out" / "vps-nat" / ".env", 0o644)
    code, out, _ = diff(capsys, str(site))
    assert code == 1 and "old mode 100644\nnew mode 100600\n" in out


def test_removed_line_that_looks_like_a_header_is_still_masked(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = site.parent / "out" / "vps-nat" / ".env"
    secret = tomllib.loads(site.with_name("site.secrets.toml").read_text())["postgres_password"]
    env.write_text(f"-- {secret}\n" + env.read_text())  # removed as "--- <secret>"
    code, out, _ = diff(capsys, str(site))
    assert code == 1 and secret not in out and f"--- {MASK}" in out


def test_bad_input_is_exit_2(site: Path) -> None:
    negative = run_cli("diff", str(site), "-U", "-1", cwd=site.parent)
    assert negative.returncode == 2 and "--unified" in negative.stderr
    site.write_text("schema_version = 2\n[capacity]\nconcurrent_calls = 0\n")
    result = run_cli("diff", str(site), cwd=site.parent)
    assert result.returncode == 2 and "concurrent_calls" in result.stderr and "Traceback" not in result.stderr


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=6, max_size=30).filter(
            lambda s: s.strip() and not PLACEHOLDER_PATTERN.search(s)
        ),
        min_size=2,
        max_size=2,
        unique=True,
    )
)
@example(["line\u2028sep\x0cff", 'q"uo\\te$$ %2F@:/'])
def test_no_secret_spelling_survives_in_a_diff(values: list[str]) -> None:
    """Old secrets on disk and new ones in the sidecar: no spelling of either reaches the diff."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "sites"
        make_fake_checkout(folder.parent / "omnivoip")
        folder.mkdir()
        profile = folder / "site.toml"
        profile.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
        sidecar = folder / "site.secrets.toml"
        sidecar.write_text(f"redis_password = {tomlkit.string(values[0]).as_string()}\n")
        build(profile, folder / "out", environ={}, token=fake_token)
        sidecar.write_text(sidecar.read_text().replace(tomlkit.string(values[0]).as_string(), tomlkit.string(values[1]).as_string()))
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
            code = main(["diff", str(profile), "-o", str(folder / "out")])
    assert code == 1
    shown = output.getvalue()
    for value in values:
        for form in all_spellings(value):
            # A "secret" such as 'REDIS_' is also part of a variable name the diff rightly shows.
            assert len(form) < 4 or form not in shown or form in PUBLIC_TEXT, (form, shown)


def test_a_sidecar_others_can_read_is_a_change_build_would_make(tmp_path: Path) -> None:
    from omnigen.pipeline import build
    from tests.conftest import ROOT, fake_token, run_cli

    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    build(profile, tmp_path / "out", environ={}, token=fake_token)
    (tmp_path / "site.secrets.toml").chmod(0o644)
    result = run_cli("diff", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "site.secrets.toml has mode 0644" in result.stderr and result.stdout == ""
