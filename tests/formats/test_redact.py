"""Masking secrets in every spelling they take in the outputs."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigen.formats.dotenv import encode_value
from omnigen.formats.redact import HIDDEN, MASK, Redactor, env_values, shown_value, spellings

SECRET = 'p@ss/w:rd#1$x"\\'


def test_every_spelling_of_a_secret_is_masked() -> None:
    redactor = Redactor.create([SECRET], [])
    for text in (
        SECRET,
        f"redis://:{quote(SECRET, safe='')}@redis:6379/0",
        f"POSTGRES_PASSWORD={encode_value(SECRET)}",
        f"password: {json.dumps(SECRET).replace('$', '$$')}",
    ):
        masked = redactor.text(text)
        assert MASK in masked
        assert not any(form in masked for form in spellings(SECRET) if len(form) > 3), masked


def test_longest_spelling_wins_so_no_fragment_survives() -> None:
    redactor = Redactor.create(["ab", "ab@cd"], [])
    assert redactor.text("x ab@cd y") == f"x {MASK} y"


def test_secret_key_lines_lose_their_value_even_when_the_value_is_unknown() -> None:
    redactor = Redactor.create([], ["POSTGRES_PASSWORD", "DATABASE_URL"])
    assert redactor.line('POSTGRES_PASSWORD="never-seen"\n', secret_file=True) == f'POSTGRES_PASSWORD="{MASK}"\n'
    assert redactor.line("export DATABASE_URL = postgres://u:x@h/db\n", secret_file=True) == f'export DATABASE_URL ="{MASK}"\n'
    assert redactor.line('POSTGRES_USER="omnivoip"\n', secret_file=True) == 'POSTGRES_USER="omnivoip"\n'
    assert redactor.line('POSTGRES_PASSWORD="x"\n', secret_file=False) == 'POSTGRES_PASSWORD="x"\n'


def test_values_on_disk_are_read_for_masking() -> None:
    text = 'A="1"\nPOSTGRES_PASSWORD="old$$one"\nB=2\n'
    assert "old$one" in env_values(text, ["POSTGRES_PASSWORD"])
    assert env_values("not a dotenv line\n", ["POSTGRES_PASSWORD"]) == []


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=4, max_size=40).filter(lambda s: "\x00" not in s and s.strip()), st.text(max_size=30))
def test_no_secret_survives_masking_in_any_spelling(secret: str, around: str) -> None:
    redactor = Redactor.create([secret], [])
    for form in (secret, quote(secret, safe=""), encode_value(secret)[1:-1], json.dumps(secret)[1:-1]):
        masked = redactor.text(around + form + around)
        assert form not in masked or form in around


@given(
    user=st.text(alphabet=st.characters(blacklist_characters="@/?#:", blacklist_categories=("Cs",)), min_size=1, max_size=20),
    password=st.text(alphabet=st.characters(blacklist_characters="@/?#", blacklist_categories=("Cs",)), min_size=1, max_size=20),
    key=st.sampled_from(["DATABASE_URL", "BROKER", "X", "POSTGRES_HOST", "SENTRY_DSN"]),
    plain=st.booleans(),
)
def test_no_url_shows_its_credentials(user: str, password: str, key: str, plain: bool) -> None:
    shown = shown_value(key, f"postgres://{user}:{password}@db.example.com:5432/app", plain_key=plain)
    assert f"{user}:{password}" not in shown


@pytest.mark.parametrize("key", ["DB_PWD", "APIKEY", "SMTP_AUTH", "AWS_ACCESS_KEY_ID", "SENTRY_DSN", "MY_PASSPHRASE", "GH_TOKEN"])
def test_credential_names_hide_even_harmless_looking_values(key: str) -> None:
    for value in ("1234", "true", "db.example.com", "hunter2"):
        assert shown_value(key, value) == HIDDEN


def test_values_are_shown_only_when_proven_harmless() -> None:
    assert shown_value("WORKERS", "4") == "'4'"
    assert shown_value("SMTP_HOST", "anything-goes") == "'anything-goes'"  # the name says it is a host
    assert shown_value("UPSTREAM", "10.0.0.1:8080") == "'10.0.0.1:8080'"
    assert shown_value("UPSTREAM", "api.example.com") == "'api.example.com'"
    assert shown_value("MOTTO", "correct horse battery staple") == HIDDEN
    assert shown_value("ACCESS", "AKIAIOSFODNN7EXAMPLE") == HIDDEN
