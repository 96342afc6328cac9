"""Properties over random valid profiles and random secrets."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnigen.catalog import hostkinds
from omnigen.formats import dotenv
from omnigen.inputs.profile import SECRET_NAMES, Profile, Secrets
from omnigen.loading import validate_profile
from omnigen.pipeline import compile_profile
from omnigen.plan.capacity import max_calls_within
from tests.conftest import compose_json, fake_token, run_compose, write_files

HOST_KINDS = ["vps", "bare-metal", "lxc-unprivileged", "lxc-privileged", "docker-desktop", "rootless"]


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, object]:
    prefix = draw(st.sampled_from([16, 20, 24, 26]))
    base = draw(st.sampled_from(["10.0.0.0", "172.16.0.0", "192.168.0.0"]))
    headroom = draw(st.integers(min_value=0, max_value=100))
    # Above the loopback debug ports (5432-9001) that network.expose_internal reserves.
    start = draw(st.integers(min_value=10000 // 2, max_value=40000 // 2)) * 2
    kind = draw(st.sampled_from(HOST_KINDS))
    facts = hostkinds.facts(kind)
    host: dict[str, object] = {"kind": kind}
    if facts.userland_proxy_optional:
        host["userland_proxy"] = draw(st.booleans())
    if kind == "rootless":
        host["low_ports"] = draw(st.sampled_from(["remap", "allow"]))
    modes = ["bridge"] if facts.lan_modes == "refused" else ["bridge", "ipvlan", "macvlan"]
    mode = draw(st.sampled_from(modes))
    data: dict[str, object] = {
        "schema_version": 2,
        "project": {"name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))},
        "host": host,
        "network": {
            "subnet": f"{base}/{prefix}",
            "public_ip": draw(st.sampled_from(["203.0.113.10", "198.51.100.7", None])),
            "bind_ip": draw(st.sampled_from(["0.0.0.0", "127.0.0.1", "192.168.1.10"])),
            "expose_internal": draw(st.booleans()),
        },
        "capacity": {
            "concurrent_calls": 1,
            "headroom_percent": headroom,
            "supervised_percent": draw(st.integers(min_value=0, max_value=100)),
            "video": draw(st.booleans()),
        },
        "rtp": {"start": start},
    }
    network = data["network"]
    assert isinstance(network, dict)
    network["mode"] = mode
    if mode != "bridge":
        network["lan"] = {"parent": "eth0", "subnet": "198.18.5.0/24", "gateway": "198.18.5.1", "address": "198.18.5.50"}
    if network["public_ip"] is None:
        del network["public_ip"]
        if network["bind_ip"] == "0.0.0.0":
            network["bind_ip"] = "192.168.1.10"
    # Calls up to what this host kind's port budget allows (larger ones are refused: tests/catalog/test_hostkinds.py).
    one_call = _validate(data)
    most = max_calls_within(one_call, hostkinds.effective_userland_proxy(kind, one_call.host.userland_proxy), upper=800)
    capacity = data["capacity"]
    assert isinstance(capacity, dict)
    capacity["concurrent_calls"] = draw(st.integers(min_value=1, max_value=min(800, most)))
    return data


def _validate(data: dict[str, object]) -> Profile:
    return validate_profile(data, file="random.toml", text="", env={})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_random_valid_profiles_build_verify_and_pass_real_compose(data: dict[str, object]) -> None:
    compiled = compile_profile(_validate(data), Secrets(), fake_token)  # verify runs inside
    with tempfile.TemporaryDirectory() as folder:
        write_files(Path(folder), compiled.files)
        result = run_compose(Path(folder), "config", "-q")
        assert result.returncode == 0, result.stderr


secret_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40).filter(
    lambda s: Secrets.model_fields and "change" not in s.lower() and "your" not in s.lower()
)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60))
def test_dotenv_encoding_round_trips_through_our_reader(value: str) -> None:
    encoded = dotenv.encode_line("KEY", value)
    assert dotenv.as_dict(dotenv.parse(encoded + "\n")) == {"KEY": value}


NASTY_SECRETS = ['p@ss:w/rd#1', '"quoted" \'single\'', "dollar $HOME ${X} $$", "back\\slash\\", "ünïcødé ☎ 电话", "new\nline\ttab\rcr", " spaced "]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(secret_text, min_size=len(SECRET_NAMES), max_size=len(SECRET_NAMES)))
@example(NASTY_SECRETS)
def test_any_secret_reaches_services_byte_for_byte(values: list[str]) -> None:
    """A user's secret, whatever its bytes, arrives unchanged in the real Compose's view of the services."""
    try:
        secrets = Secrets(**dict(zip(SECRET_NAMES, values, strict=True)))
    except ValueError:
        return  # placeholders and the like are refused; that path is tested elsewhere
    profile = _validate({"schema_version": 2, "project": {"name": "p"}, "network": {"public_ip": "203.0.113.1"}, "capacity": {"concurrent_calls": 5}})
    compiled = compile_profile(profile, secrets, fake_token)
    with tempfile.TemporaryDirectory() as folder:
        write_files(Path(folder), compiled.files)
        services = compose_json(Path(folder))["services"]
        assert isinstance(services, dict)
    django = services["django-app"]["environment"]
    assert django["POSTGRES_PASSWORD"] == secrets.postgres_password
    assert django["REDIS_PASSWORD"] == secrets.redis_password
    assert django["SECRET_KEY"] == secrets.django_secret_key
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == secrets.redis_password
    assert django["ASTERISK_AMI_SECRET"] == secrets.ami_password
    assert services["dialer-api"]["environment"]["ASTERISK_AMI_SECRET"] == secrets.dialer_ami_password
    broker = urlsplit(django["CELERY_BROKER_URL"])
    assert broker.hostname == "redis" and broker.port == 6379
    assert unquote(broker.password or "") == secrets.redis_password
    # The dialer reads one URL: the same Redis, its own database, the same percent-encoded password.
    dialer = urlsplit(services["dialer-api"]["environment"]["REDIS_URL"])
    assert (dialer.hostname, dialer.port, dialer.path) == ("redis", 6379, "/3")
    assert unquote(dialer.password or "") == secrets.redis_password


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=60))
def test_url_credentials_round_trip(secret: str) -> None:
    from omnigen.plan.plan import _url_secret

    url = f"redis://:{_url_secret(secret)}@redis:6379/0"
    parts = urlsplit(url)
    assert parts.hostname == "redis" and parts.port == 6379
    assert unquote(parts.password or "") == secret


def test_fake_token_is_url_safe_and_long_enough() -> None:
    for name in SECRET_NAMES:
        token = fake_token(name)
        assert len(token) >= 24 and all(c.isalnum() or c in "-_" for c in token)
