"""Hostile input: no profile value or secret can add a line, section, directive or key to any output.

Three layers, each tested on its own:
- the encoders (`conf`, `dotenv`, YAML `q`): any string is either refused or
  reads back as exactly one value in place (property tests, plus the real
  Compose on a batch of nasty strings);
- the profile: every string field, given injection payloads, is refused
  (exit 2) or produces outputs with the same structure as a benign value;
- secrets: accepted as any bytes but NUL, and the outputs keep their structure.
"""

from __future__ import annotations

import copy
import json
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from omnigen.errors import ProfileError
from omnigen.formats import dotenv
from omnigen.formats.asteriskconf import ConfValueError, conf_value, parse_conf
from omnigen.formats.keyfile import KeyFileValueError, keyfile_value
from omnigen.pipeline import compile_profile
from omnigen.profile import SECRET_NAMES, Profile, Secrets, validate_profile
from omnigen.render import yaml_quote
from tests.conftest import ROOT, compose_json, fake_token, run_cli, write_files

# Line breaks as Python, YAML, Asterisk, GLib or Go might see them, comment and
# section openers, config directives, quote breakers and interpolation.
PAYLOADS = [
    "\n[evil]\nkey=value",
    "\r\nbad=1",
    "\rbad=1",
    "\x00",
    ";comment",
    "[section]",
    "]",
    "\n#include /etc/passwd",
    "#include /etc/passwd",
    "#exec /bin/sh",
    "#tryinclude x",
    "\nEXTRA_KEY=1",
    '"\nEVIL: 1',
    "'\nevil: 1",
    "\nevil: true",
    ": x",
    "- item",
    "{a: b}",
    "${HOME}",
    "$(id)",
    "`id`",
    "\\",
    '"',
    "'",
    "\t",
    "\x0b",
    "\x0c",
    "\x1e",
    "\x85",
    "\u2028injected",
    "\u2029",
    " ",
    "a b",
    "\u202e",
    "\ufeff",
]

# Benign values for string fields whose default is None.
BENIGN = {
    ("project", "domain"): "contact.example.com",
    ("network", "lan", "parent"): "eth0",
}
BENIGN_PREFIX = {("build",): "images/context"}


def _unwrap(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def string_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every free-text field of the profile schema, with its default (Literals are closed sets: skipped)."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        for kind in _unwrap(info.annotation):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found += string_fields(kind, path)
            elif kind is str:
                found.append((path, None if info.is_required() else info.get_default(call_default_factory=True)))
    return found


def _set(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def _base(name: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "profiles" / f"{name}.toml").read_text())


def _current(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def skeleton(relative: str, text: str) -> Any:
    """The structure of an output with its values removed: what an injection would change."""
    if relative.endswith((".yml", ".yaml")):
        def shape(node: Any) -> Any:
            if isinstance(node, dict):
                return {key: shape(value) for key, value in node.items()}
            if isinstance(node, list):
                return [shape(item) for item in node]
            return type(node).__name__

        return shape(yaml.safe_load(text))
    if relative.endswith(".env"):
        return [entry.key for entry in dotenv.parse(text)]
    if relative.startswith("asterisk/"):
        parsed = parse_conf(text)
        return (
            [(s.name, s.template, s.inherits, [setting.key for setting in s.settings]) for s in parsed.sections],
            parsed.directives,
            [setting.key for setting in parsed.preamble],
        )
    # Any other format: the same number of lines, each starting the same way.
    return [line.split("=", 1)[0].split(" ", 1)[0][:12] if line.strip() else "" for line in text.splitlines()]


def outputs_skeleton(files: dict[str, str]) -> dict[str, Any]:
    return {relative: skeleton(relative, text) for relative, text in files.items()}


def compile_data(data: dict[str, Any], secrets: Secrets | None = None) -> dict[str, str]:
    return compile_profile(validate_profile(data, file="hostile.toml", text="", env={}), secrets or Secrets(), fake_token).files


# --------------------------------------------------------------------------- the encoders


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
@example("a\u2028#include x")
@example("a\x85[x]")
@example("x\u2029;y")
@example(">x")
def test_conf_value_is_refused_or_reads_back_as_one_value(value: str) -> None:
    try:
        written = conf_value(value)
    except ConfValueError:
        return
    parsed = parse_conf(f"[general]\nkey={written}\nnext=1\n")
    assert [section.name for section in parsed.sections] == ["general"]
    assert parsed.directives == [] and parsed.preamble == []
    assert [(s.key, s.value) for s in parsed.sections[0].settings] == [("key", value), ("next", "1")]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a;b", "[a", "a]", "#include x", "#exec y", " #include x", "a\u2028b", "a\x85b", " lead", "trail "])
def test_conf_value_refuses_what_could_add_configuration(value: str) -> None:
    with pytest.raises(ConfValueError):
        conf_value(value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))
@example("x\"\nEVIL=1\n#")
@example("\\\"\nEVIL=1")
def test_dotenv_value_never_adds_a_key(value: str) -> None:
    text = f"BEFORE=\"1\"\nKEY={dotenv.encode_value(value)}\nAFTER=\"2\"\n"
    assert dotenv.as_dict(dotenv.parse(text)) == {"BEFORE": "1", "KEY": value, "AFTER": "2"}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
@example('"\nevil: 1')
@example("\u2028evil: 1")
def test_yaml_q_never_adds_a_key(value: str) -> None:
    loaded = yaml.safe_load(f"before: 1\nkey: {yaml_quote(value)}\nafter: 2\n")
    assert loaded == {"before": 1, "key": value.replace("$", "$$"), "after": 2}


def test_encoders_agree_with_the_real_compose_on_nasty_strings(tmp_path: Path) -> None:
    """One Compose run judges every payload: .env values and YAML strings read back byte for byte."""
    values = [payload for payload in PAYLOADS if "\x00" not in payload] + ["x" + payload + "y" for payload in PAYLOADS if "\x00" not in payload]
    env_lines = [f"V{index}={dotenv.encode_value(value)}" for index, value in enumerate(values)]
    environment = {f"E{index}": f"${{V{index}}}" for index in range(len(values))}
    environment |= {f"Y{index}": value for index, value in enumerate(values)}
    compose = "services:\n  probe:\n    image: \"busybox:1.36\"\n    environment:\n"
    compose += "".join(f"      {key}: {yaml_quote(value) if key.startswith('Y') else json.dumps(value)}\n" for key, value in environment.items())
    write_files(tmp_path, {"docker-compose.yml": compose, ".env": "\n".join(env_lines) + "\n"})
    seen = compose_json(tmp_path)["services"]["probe"]["environment"]  # type: ignore[index]
    for index, value in enumerate(values):
        assert seen[f"E{index}"] == value, (index, value)
        assert seen[f"Y{index}"] == value, (index, value)
    assert set(seen) == set(environment), "no key was added"


# --------------------------------------------------------------------------- the profile


FIELDS = string_fields(Profile)


def test_the_profile_has_string_fields_to_attack() -> None:
    paths = {path for path, _ in FIELDS}
    assert {("project", "name"), ("project", "domain"), ("images", "asterisk"), ("database", "user")} <= paths


# Bridge networking, ipvlan (network.lan) and WebRTC (Kamailio, rtpengine): every output kind.
BASES = [name for name in ("vps-nat", "call-center-500", "webrtc") if (ROOT / "profiles" / f"{name}.toml").is_file()]


def _applies(base_name: str, path: tuple[str, ...]) -> bool:
    """Fields of an optional table (network.lan) only matter in a base that has the table."""
    return len(path) < 3 or _current(_base(base_name), path[:-1]) is not None or path[:-1] not in {("network", "lan")}


CASES = [(base, path, default) for base in BASES for path, default in FIELDS if _applies(base, path)]


@pytest.mark.parametrize(("base_name", "path", "default"), CASES, ids=[f"{base}-{'.'.join(path)}" for base, path, _ in CASES])
def test_no_string_field_can_inject_configuration(base_name: str, path: tuple[str, ...], default: Any) -> None:
    base = _base(base_name)
    benign = _current(base, path) or default or BENIGN.get(path) or BENIGN_PREFIX.get(path[:1])
    assert isinstance(benign, str), f"add a benign value for new string field {'.'.join(path)} to BENIGN"
    reference_data = copy.deepcopy(base)
    _set(reference_data, path, benign)
    reference = outputs_skeleton(compile_data(reference_data))
    refused = 0
    for payload in PAYLOADS:
        for value in (benign + payload, payload + benign, payload):
            data = copy.deepcopy(base)
            _set(data, path, value)
            try:
                files = compile_data(data)
            except ProfileError:
                refused += 1
                continue
            assert outputs_skeleton(files) == reference, f"{'.'.join(path)} = {value!r} changed the structure of the output"
    assert refused >= len(PAYLOADS), f"{'.'.join(path)} accepts nearly every payload: is it validated at all?"


def test_environment_overrides_are_validated_the_same_way(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    for variable, value in (("OMNIGEN_PROJECT__DOMAIN", "a.example.com\n[evil]"), ("OMNIGEN_DATABASE__USER", "u;x"), ("OMNIGEN_IMAGES__REDIS", 'redis:7"\nx: 1')):
        result = run_cli("build", str(profile), "-o", str(tmp_path / "out"), env={variable: value})
        assert result.returncode == 2 and variable in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- secrets


def _secret_batches() -> list[dict[str, str]]:
    usable = [payload for payload in PAYLOADS if "\x00" not in payload]
    values = [f"s{index}{payload}tail" for index, payload in enumerate(usable)] + [f"{payload}x{index}" for index, payload in enumerate(usable)]
    return [dict(zip(SECRET_NAMES, values[start : start + len(SECRET_NAMES)], strict=False)) for start in range(0, len(values), len(SECRET_NAMES))]


@pytest.mark.parametrize("batch", _secret_batches(), ids=lambda batch: str(len(batch)))
def test_no_secret_can_inject_configuration(batch: dict[str, str]) -> None:
    base = _base("vps-nat")
    reference = outputs_skeleton(compile_data(base))
    compiled = compile_profile(validate_profile(base, file="hostile.toml", text="", env={}), Secrets(**batch), fake_token)
    files, secrets = compiled.files, compiled.secrets
    assert outputs_skeleton(files) == reference
    env = dotenv.as_dict(dotenv.parse(files[".env"]))
    assert env["POSTGRES_PASSWORD"] == secrets.postgres_password
    assert env["DJANGO_SECRET_KEY"] == secrets.django_secret_key
    with tempfile.TemporaryDirectory() as folder:
        write_files(Path(folder), files)
        services = compose_json(Path(folder))["services"]
    assert services["asterisk"]["environment"]["ACD_AMI_PASSWORD"] == secrets.ami_password  # type: ignore[index]
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == secrets.redis_password  # type: ignore[index]


def test_nul_in_a_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    (tmp_path / "p.secrets.toml").write_text('redis_password = "top\\u0000secret"\n')
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "NUL" in result.stderr and "top" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "value"), [("public_ip", True), ("public_ip", 3405803786), ("bind_ip", 1), ("subnet", 167772160)])
def test_addresses_are_never_read_from_numbers_or_booleans(key: str, value: object) -> None:
    """pydantic would read `public_ip = true` as 0.0.0.1: a typo must not become an address in SIP/SDP."""
    data = _base("vps-nat")
    data["network"][key] = value
    with pytest.raises(ProfileError, match=f"network.{key}: write the address as a quoted string"):
        validate_profile(data, file="p.toml", text="", env={})


@pytest.mark.parametrize("value", ["a\nb", "a\u2028b", "a\x85b", "a;b", "#x", "[g]", "a\\b", " a"])
def test_keyfile_value_refuses_line_breaks_and_separators(value: str) -> None:
    with pytest.raises(KeyFileValueError):
        keyfile_value(value)


def test_sidecar_refuses_exactly_what_the_verify_stage_calls_a_placeholder() -> None:
    """Otherwise a secret the sidecar accepts (e.g. "SECRET") fails verification: exit 3 instead of 2."""
    from omnigen.profile import PLACEHOLDER_PATTERN
    from omnigen.rules.drift import PLACEHOLDER

    assert (PLACEHOLDER_PATTERN.pattern, PLACEHOLDER_PATTERN.flags) == (PLACEHOLDER.pattern, PLACEHOLDER.flags)
    for value in ("SECRET", "changeit", "<password>", "insecure-default", "TODO"):
        with pytest.raises(ValueError, match="placeholder"):
            Secrets(redis_password=value)
