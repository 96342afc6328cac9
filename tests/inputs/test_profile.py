"""Bad input never produces a traceback: exit 2 and a located message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omnigen.errors import ProfileError
from omnigen.inputs.profile import load_secrets
from omnigen.loading import load_profile
from tests.conftest import run_cli

GOOD = """schema_version = 2
[project]
name = "acme"
[network]
mode = "bridge"
subnet = "10.22.22.0/24"
public_ip = "203.0.113.10"
bind_ip = "0.0.0.0"
[capacity]
concurrent_calls = 50
[rtp]
start = 10000
"""


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acme.toml"
    path.write_text(text)
    return path


BAD_INPUTS = [
    pytest.param(GOOD.replace('name = "acme"', 'name = "acme"\nname2 = 1'), "acme.toml:4: project.name2: unknown key", id="unknown-key"),
    pytest.param(GOOD + "[colour]\nx = 1\n", "colour: unknown key", id="unknown-table"),
    pytest.param(GOOD.replace("concurrent_calls = 50", "concurrent_calls = 0"), "acme.toml:10: capacity.concurrent_calls: Input should be greater than or equal to 1 (got 0)", id="calls-zero"),
    pytest.param(GOOD.replace("concurrent_calls = 50", 'concurrent_calls = "many"'), "acme.toml:10: capacity.concurrent_calls", id="calls-type"),
    pytest.param(GOOD.replace("concurrent_calls = 50", "concurrent_calls = 50.5"), "capacity.concurrent_calls", id="calls-float"),
    pytest.param(GOOD.replace("concurrent_calls = 50", "concurrent_calls = 50.0"), "capacity.concurrent_calls: must be a whole number", id="calls-whole-float"),
    pytest.param(GOOD.replace("concurrent_calls = 50", "concurrent_calls = true"), "capacity.concurrent_calls: must be a whole number", id="calls-bool"),
    pytest.param(GOOD + "[components]\nwebrtc = 1\n", "components.webrtc: must be true or false", id="switch-number"),
    pytest.param(
        GOOD.replace("concurrent_calls = 50", 'concurrent_calls = "50"'),
        'acme.toml:10: capacity.concurrent_calls: must be a whole number, written without quotes: 50, not "50"',
        id="calls-quoted",
    ),
    pytest.param(GOOD.replace("start = 10000", 'start = " 10000"'), "rtp.start: must be a whole number, written without quotes", id="start-quoted"),
    pytest.param(GOOD + "[components]\nwebrtc = \"true\"\n", "components.webrtc: must be true or false, written without quotes", id="switch-quoted"),
    pytest.param(
        GOOD.replace('subnet = "10.22.22.0/24"', 'subnet = "10.22.22.5/24"'),
        'acme.toml:6: network.subnet: 10.22.22.5/24 has host bits set: a subnet is written with its network address; write "10.22.22.0/24"',
        id="subnet-host-bits",
    ),
    pytest.param(GOOD.replace("start = 10000", "start = 10001"), "acme.toml:12: rtp.start: rtp.start must be even", id="odd-start"),
    pytest.param(GOOD.replace("start = 10000", "start = 65400"), "ends at 65651, past 65535", id="range-past-65535"),
    pytest.param(GOOD.replace('subnet = "10.22.22.0/24"', 'subnet = "10.22.22.0/33"'), "acme.toml:6: network.subnet", id="bad-subnet"),
    pytest.param(GOOD.replace('subnet = "10.22.22.0/24"', 'subnet = "8.8.8.0/24"'), "private range", id="public-subnet"),
    pytest.param(GOOD.replace('subnet = "10.22.22.0/24"', 'subnet = "10.22.22.0/27"'), "10.22.22.0/27 leaves 15 addresses", id="subnet-too-small"),
    pytest.param(GOOD.replace('public_ip = "203.0.113.10"', 'public_ip = "203.0.113.300"'), "acme.toml:7: network.public_ip", id="bad-ip"),
    pytest.param(GOOD.replace('mode = "bridge"', 'mode = "host"'), 'acme.toml:5: network.mode: network mode "host" is refused', id="host-mode"),
    pytest.param(GOOD.replace('name = "acme"', 'name = "Acme Corp"'), "acme.toml:3: project.name: String should match pattern", id="bad-name"),
    pytest.param(GOOD.replace("[capacity]", '[host]\nkind = "kubernetes"\n[capacity]'), "host.kind: Input should be", id="bad-host-kind"),
    pytest.param(GOOD.replace("concurrent_calls = 50", "concurrent_calls = 50\nconcurrent_calls = 60"), "malformed TOML", id="malformed-toml"),
    pytest.param(GOOD.replace("schema_version = 2", "schema_version = 7"), "schema_version: this profile is for a newer omnigen", id="newer-schema"),
    pytest.param(GOOD.replace("[capacity]\nconcurrent_calls = 50\n", ""), "capacity: required key is missing", id="missing-capacity"),
    pytest.param(GOOD.replace('public_ip = "203.0.113.10"\n', ""), "no address to advertise", id="no-advertised-address"),
    pytest.param(GOOD.replace("start = 10000", "start = 5000"), "contains ports.sip = 5060", id="rtp-overlaps-sip"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_INPUTS)
def test_bad_profile_is_refused_with_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    path = _profile(tmp_path, text)
    result = run_cli("build", str(path), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr.replace(str(tmp_path) + "/", "")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists(), "bad input must not produce partial output"


def test_environment_override_wins_over_file(tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path, GOOD), {"OMNIGEN_CAPACITY__CONCURRENT_CALLS": "60"})
    assert profile.capacity.concurrent_calls == 60


def test_environment_overrides_are_text_and_still_typed(tmp_path: Path) -> None:
    """Every environment value is a string; the quoted-number refusal is for the TOML file only."""
    env = {
        "OMNIGEN_CAPACITY__CONCURRENT_CALLS": "60",
        "OMNIGEN_CAPACITY__VIDEO": "true",
        "OMNIGEN_NETWORK__EXPOSE_INTERNAL": "1",
        "OMNIGEN_RTP__START": " 12000 ",
        "OMNIGEN_WORKERS__DIALER": "3",
        "OMNIGEN_HOST__USERLAND_PROXY": "false",
    }
    profile = load_profile(_profile(tmp_path, GOOD), env)
    assert (profile.capacity.concurrent_calls, profile.capacity.video, profile.network.expose_internal) == (60, True, True)
    assert (profile.rtp.start, profile.workers.dialer, profile.host.userland_proxy) == (12000, 3, False)
    result = run_cli("build", str(_profile(tmp_path, GOOD)), env={"OMNIGEN_CAPACITY__CONCURRENT_CALLS": "60"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with pytest.raises(ProfileError) as caught:
        load_profile(_profile(tmp_path, GOOD), {"OMNIGEN_CAPACITY__CONCURRENT_CALLS": "sixty"})
    assert "environment OMNIGEN_CAPACITY__CONCURRENT_CALLS: capacity.concurrent_calls: Input should be a valid integer" in caught.value.render()


def test_lan_subnet_with_host_bits_names_the_network(tmp_path: Path) -> None:
    lan = '[network.lan]\nparent = "eth0"\nsubnet = "192.168.1.10/24"\ngateway = "192.168.1.1"\naddress = "192.168.1.20"\n'
    text = GOOD.replace('mode = "bridge"', 'mode = "ipvlan"').replace("[capacity]", lan + "[capacity]")
    with pytest.raises(ProfileError) as caught:
        load_profile(_profile(tmp_path, text), {})
    assert 'network.lan.subnet: 192.168.1.10/24 has host bits set: a subnet is written with its network address; write "192.168.1.0/24"' in caught.value.render()


def test_bad_environment_override_names_the_variable(tmp_path: Path) -> None:
    result = run_cli("build", str(_profile(tmp_path, GOOD)), env={"OMNIGEN_CAPACITY__CONCURRENT_CALLS": "-3"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "environment OMNIGEN_CAPACITY__CONCURRENT_CALLS: capacity.concurrent_calls" in result.stderr


@pytest.mark.parametrize("name", ["OMNIGEN_CAPACITY__CONCURENT_CALLS", "OMNIGEN_TYPO", "OMNIGEN_CAPACITY__CONCURRENT_CALLS__X"])
def test_unknown_environment_override_is_an_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(_profile(tmp_path, GOOD), {name: "5"})
    assert f"environment {name}" in caught.value.render()
    assert "unknown override" in caught.value.render()


def test_missing_profile_file(tmp_path: Path) -> None:
    result = run_cli("build", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: file not found" in result.stderr


def test_latest_image_tag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(_profile(tmp_path, GOOD + '[images]\nredis = "redis:latest"\n'), {})
    assert "acme.toml:14: images.redis" in caught.value.render().replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize("value", ["CHANGE_ME", "s3minio123_CHANGE_ME", "YOUR_PASSWORD", ""])
def test_placeholder_secrets_are_refused_and_never_echoed(tmp_path: Path, value: str) -> None:
    sidecar = tmp_path / "acme.secrets.toml"
    sidecar.write_text(f'redis_password = "{value}"\n')
    with pytest.raises(ProfileError) as caught:
        load_secrets(sidecar)
    message = caught.value.render()
    assert "acme.secrets.toml:1: redis_password" in message.replace(str(tmp_path) + "/", "")
    if value:
        assert value not in message


def test_unknown_secret_key_is_refused(tmp_path: Path) -> None:
    sidecar = tmp_path / "acme.secrets.toml"
    sidecar.write_text('redis_pasword = "abc"\n')
    with pytest.raises(ProfileError, match="redis_pasword: unknown key"):
        load_secrets(sidecar)


# --------------------------------------------------------------------------- smaller hardening points (issue 18)


def _with(tmp_path: Path, extra: str, name: str = "site.toml") -> Path:
    from tests.conftest import ROOT

    profile = tmp_path / name
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text() + extra)
    return profile


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ("..", "names a parent of the output folder"),
        ("../../../../../../..", "names a parent of the output folder"),
        ("../", "names a parent of the output folder"),
        (".", "needs a folder name"),
        ("src/../../../etc", "`..` after a folder name"),
        ("src/./backend", "needs a folder name"),
    ],
)
def test_build_contexts_that_reach_the_output_or_root_are_refused(tmp_path: Path, context: str, expected: str) -> None:
    profile = _with(tmp_path, f'\n[build]\nbackend = "{context}"\n')
    with pytest.raises(ProfileError, match=r"build\.backend: .*" + re.escape(expected)):
        load_profile(profile, {})


@pytest.mark.parametrize("context", ["../../src/backend", "./backend", "vendor/omnivoip/backend/", "../a..b"])
def test_build_contexts_naming_a_source_folder_are_accepted(tmp_path: Path, context: str) -> None:
    profile = _with(tmp_path, f'\n[build]\nbackend = "{context}"\n')
    assert load_profile(profile, {}).build.backend == context


@pytest.mark.parametrize(
    ("context", "expected"),
    [("../../out", "holds the output folder"), ("../..", "names a parent"), ("/".join([".."] * 40) + "/etc", "past /")],
)
def test_build_contexts_are_held_to_the_real_output_folder(tmp_path: Path, context: str, expected: str) -> None:
    from omnigen.pipeline import build

    profile = _with(tmp_path, f'\n[build]\nbackend = "{context}"\n')
    with pytest.raises(ProfileError, match=expected):
        build(profile, tmp_path / "out" / "acme", environ={})
    assert not (tmp_path / "out").exists() and not (tmp_path / "site.secrets.toml").exists()


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [("a..b", "cannot hold `..`"), ("ab.-c", "cannot hold"), ("ab-.c", "cannot hold"), ("192.168.5.4", "IP address"), ("xn--abc", "reserves"), ("rec-s3alias", "reserves")],
)
def test_bucket_names_follow_the_s3_rules(tmp_path: Path, bucket: str, expected: str) -> None:
    profile = _with(tmp_path, f'\n[storage]\nbucket = "{bucket}"\n')
    with pytest.raises(ProfileError, match=r"storage\.bucket: .*" + re.escape(expected)):
        load_profile(profile, {})


@pytest.mark.parametrize("bucket", ["omnivoip", "rec.acme-1", "a1b", "recordings.example.com"])
def test_valid_bucket_names_are_accepted(tmp_path: Path, bucket: str) -> None:
    assert load_profile(_with(tmp_path, f'\n[storage]\nbucket = "{bucket}"\n'), {}).storage.bucket == bucket


@pytest.mark.parametrize("name", ["site.toml", "site.secrets.toml"])
def test_a_byte_order_mark_is_named_not_an_invalid_statement(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + b'[project]\nname = "acme"\n')
    loader = load_secrets if name.endswith(".secrets.toml") else lambda p: load_profile(p, {})
    with pytest.raises(ProfileError) as caught:
        loader(path)
    message = caught.value.render()
    assert "byte order mark (BOM)" in message and "save the file as UTF-8 without BOM" in message
    assert "Invalid statement" not in message


# TOML syntax errors carry file:line:column on every Python omnigen supports: tomllib only
# puts the position in its message before 3.14 (issue 15).
TOML_SYNTAX = [
    pytest.param(GOOD.replace("[rtp]", "[rtp"), "acme.toml:11:5: malformed TOML: Expected ']' at the end of a table declaration; fix the TOML syntax", id="unclosed-table"),
    pytest.param(GOOD.replace("start = 10000", "start = 10000 10"), "acme.toml:12:15: malformed TOML: Expected newline or end of document after a statement; fix the TOML syntax", id="trailing-value"),
    pytest.param(
        GOOD.replace("concurrent_calls = 50", "concurrent_calls = 50\n  concurrent_calls = 60"),
        "acme.toml:11:3: capacity.concurrent_calls: malformed TOML: the key is defined twice (first on line 10); keep one definition",
        id="duplicate-key",
    ),
    pytest.param(
        GOOD.replace('name = "acme"', 'name = "acme"\nname = "other"'),
        "acme.toml:4:1: project.name: malformed TOML: the key is defined twice (first on line 3); keep one definition",
        id="duplicate-name",
    ),
    pytest.param(
        GOOD + "[project]\ntimezone = 'UTC'\n",
        "acme.toml:13:9: project: malformed TOML: the table [project] is declared twice (first on line 2); merge the two tables into one",
        id="duplicate-table",
    ),
    pytest.param(
        GOOD.replace("[project]\nname", "project.domain = 'x.example'\n[project]\nname"),
        "acme.toml:3:9: project: malformed TOML: the table [project] is declared twice (first on line 2); merge the two tables into one",
        id="table-after-dotted-keys",
    ),
    pytest.param(
        GOOD + '[[hosts]]\nname = "a"\n[[hosts]]\nname = "b"\nname = "c"\n',
        "acme.toml:17:1: hosts.1.name: malformed TOML: the key is defined twice (first on line 16); keep one definition",
        id="duplicate-in-array-of-tables",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TOML_SYNTAX)
def test_toml_syntax_error_is_located_to_the_column(tmp_path: Path, text: str, expected: str) -> None:
    path = _profile(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path, {})
    assert caught.value.render() == f"{tmp_path}/{expected}"


def test_secrets_sidecar_syntax_error_is_located_to_the_column(tmp_path: Path) -> None:
    path = tmp_path / "acme.secrets.toml"
    path.write_text('mysql_password = "a"\nmysql_password = "b"\n')
    with pytest.raises(ProfileError) as caught:
        load_secrets(path)
    assert caught.value.render() == f"{path}:2:1: mysql_password: malformed TOML: the key is defined twice (first on line 1); keep one definition"


def test_toml_position_is_read_from_the_message_when_the_exception_has_none() -> None:
    # Python 3.11-3.13: TOMLDecodeError has no lineno/colno, only "(at line L, column C)".
    import tomllib

    from omnigen.inputs.tomlpos import _syntax_issue

    issue = _syntax_issue(tomllib.TOMLDecodeError("Invalid value (at line 3, column 7)"), "a = 1\nb = 2\nc = \n", "p.toml")
    assert issue.render() == "p.toml:3:7: malformed TOML: Invalid value; fix the TOML syntax"


@pytest.mark.parametrize("example", sorted((Path(__file__).parent.parent.parent / "profiles").glob("*.toml")), ids=lambda path: path.stem)
def test_every_duplicated_key_of_an_example_is_named(tmp_path: Path, example: Path) -> None:
    from omnigen.inputs.tomlpos import key_lines

    lines = example.read_text().splitlines()
    checked = 0
    for path, number in key_lines(example.read_text()).items():
        line = lines[number - 1]
        if line.lstrip().startswith("[") or path[-1].isdigit():
            continue  # table headers: a repeated header is another message (test above)
        doubled = tmp_path / "doubled.toml"
        doubled.write_text("\n".join([*lines[:number], line, *lines[number:]]) + "\n")
        with pytest.raises(ProfileError) as caught:
            load_profile(doubled, {})
        column = len(line) - len(line.lstrip()) + 1
        assert caught.value.render() == (
            f"{doubled}:{number + 1}:{column}: {'.'.join(path)}: malformed TOML: the key is defined twice (first on line {number}); keep one definition"
        )
        checked += 1
    assert checked >= 5
