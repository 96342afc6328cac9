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
import os
import resource
import subprocess
import sys
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from omnigen.errors import ProfileError
from omnigen.formats import dotenv
from omnigen.formats.asteriskconf import ConfValueError, conf_value, parse_conf
from omnigen.formats.keyfile import KeyFileValueError, keyfile_value
from omnigen.inputs.profile import ASTERISK_UNREADABLE, KAMAILIO_UNREADABLE, SECRET_NAMES, Profile, Secrets
from omnigen.loading import validate_profile
from omnigen.pipeline import compile_profile
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
    ("host", "memory"): "16G",
    ("tls", "certificate"): "certs/site-chain.pem",
    ("tls", "key"): "certs/site-key.pem",
    ("tls", "acme_email"): "ops@example.com",
}
# Other keys a field needs set beside it to be used at all (tls.certificate only exists in mode "files").
BENIGN_CONTEXT: dict[tuple[str, ...], dict[tuple[str, ...], Any]] = {
    ("tls", "certificate"): {("tls",): {"mode": "files", "key": "certs/site-key.pem"}},
    ("tls", "key"): {("tls",): {"mode": "files", "certificate": "certs/site-chain.pem"}},
    ("tls", "acme_email"): {("tls",): {"mode": "acme"}, ("project", "domain"): "contact.example.com"},
    ("tls", "acme_server"): {("tls",): {"mode": "acme", "acme_email": "ops@example.com"}, ("project", "domain"): "contact.example.com"},
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


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
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
    base = copy.deepcopy(_base(base_name))
    for context_path, context_value in BENIGN_CONTEXT.get(path, {}).items():
        _set(base, context_path, context_value)
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


# Written into manager.conf/ari.conf as well as .env (docs/application.md).
ASTERISK_SECRETS = {"ami_password", "dialer_ami_password", "ari_password"}


def _secret_batches() -> list[dict[str, str]]:
    usable = [payload for payload in PAYLOADS if "\x00" not in payload]
    values = [f"s{index}{payload}tail" for index, payload in enumerate(usable)] + [f"{payload}x{index}" for index, payload in enumerate(usable)]
    return [dict(zip(SECRET_NAMES, values[start : start + len(SECRET_NAMES)], strict=False)) for start in range(0, len(values), len(SECRET_NAMES))]


@pytest.mark.parametrize("batch", _secret_batches(), ids=lambda batch: str(len(batch)))
def test_no_secret_can_inject_configuration(batch: dict[str, str]) -> None:
    base = _base("vps-nat")
    reference = outputs_skeleton(compile_data(base))
    # manager.conf/ari.conf carry the AMI/ARI secrets: what Asterisk cannot read back is refused at the sidecar.
    for name in ASTERISK_SECRETS & set(batch):
        if ASTERISK_UNREADABLE.search(batch[name]) or batch[name] != batch[name].strip():
            with pytest.raises(ValidationError, match="Asterisk cannot read this secret back"):
                Secrets(**{name: batch.pop(name)})
    # Kamailio reads webrtc_auth_secret through #!defenvs, which cannot carry a quote, a backslash or a control character.
    if "webrtc_auth_secret" in batch and KAMAILIO_UNREADABLE.search(batch["webrtc_auth_secret"]):
        with pytest.raises(ValidationError, match="Kamailio cannot read this secret"):
            Secrets(webrtc_auth_secret=batch.pop("webrtc_auth_secret"))
    compiled = compile_profile(validate_profile(base, file="hostile.toml", text="", env={}), Secrets(**batch), fake_token)
    files, secrets = compiled.files, compiled.secrets
    assert outputs_skeleton(files) == reference
    env = dotenv.as_dict(dotenv.parse(files[".env"]))
    assert env["POSTGRES_PASSWORD"] == secrets.postgres_password
    assert env["DJANGO_SECRET_KEY"] == secrets.django_secret_key
    with tempfile.TemporaryDirectory() as folder:
        write_files(Path(folder), files)
        services = compose_json(Path(folder))["services"]
    assert services["django-app"]["environment"]["ASTERISK_AMI_SECRET"] == secrets.ami_password  # type: ignore[index]
    assert services["dialer-api"]["environment"]["ASTERISK_AMI_SECRET"] == secrets.dialer_ami_password  # type: ignore[index]
    manager = parse_conf(files["asterisk/manager.conf"])
    assert manager.section("omnivoip").get("secret").value == secrets.ami_password  # type: ignore[union-attr]
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
    from omnigen.inputs.profile import PLACEHOLDER_PATTERN
    from omnigen.verify.rules.drift import PLACEHOLDER

    assert (PLACEHOLDER_PATTERN.pattern, PLACEHOLDER_PATTERN.flags) == (PLACEHOLDER.pattern, PLACEHOLDER.flags)
    for value in ("SECRET", "changeit", "<password>", "insecure-default", "TODO"):
        with pytest.raises(ValueError, match="placeholder"):
            Secrets(redis_password=value)


# --------------------------------------------------------------------------- hostile files
# Input files that would hang a read, never end, or expand without bound: every command
# refuses them with exit 2 and a message, in bounded time and memory (docs/safe-output.md).
# Each runs as a real process under an address-space limit and a timeout, so a regression
# fails the test instead of hanging or swapping the machine.

HOSTILE_MEMORY = 1 << 30


def _bounded_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (HOSTILE_MEMORY, HOSTILE_MEMORY))

    env = {key: value for key, value in os.environ.items() if not key.startswith("OMNIGEN_")}
    return subprocess.run(
        [sys.executable, "-m", "omnigen", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=60, preexec_fn=limit
    )


def billion_laughs() -> str:
    lines = ["services:", "  app:", "    image: busybox:1.36", "x-lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x-lol{level}: &lol{level} [{', '.join([f'*lol{level - 1}'] * 9)}]" for level in range(1, 10)]
    return "\n".join([*lines, "x-boom: *lol9"]) + "\n"


COMPOSE_APP = "services:\n  app:\n    image: busybox:1.36\n"
# `import` reads a deployment with the same loader as `lint`: a few cases show it, lint takes them all.
# `import` reads a deployment with the same loader as `lint`: lint takes every case, import a few.
IMPORT_TOO = {"billion-laughs", "recursive-alias", "env-file-dev-zero", "dotenv-fifo"}


def _with_commands(cases: list[tuple[str, Any, str]]) -> list[Any]:
    return [
        pytest.param(command, name, value, expected, id=f"{command}-{name}")
        for name, value, expected in cases
        for command in ("lint", "import")
        if command == "lint" or name in IMPORT_TOO
    ]


YAML_BOMBS = [
    ("billion-laughs", billion_laughs(), "aliases expand to more than"),
    ("merge-key-laughs", COMPOSE_APP + "x-m0: &m0 {a: 1}\n" + "".join(f"x-m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}\n" for i in range(1, 40)), "aliases expand"),
    ("recursive-alias", COMPOSE_APP + "x-loop: &loop [1, *loop]\n", "recursive alias"),
    ("recursive-merge", "services:\n  app: &app\n    image: busybox:1.36\n    <<: *app\n", "recursive alias"),
    ("deep-nesting", COMPOSE_APP + "x-deep:\n" + "".join("  " * level + "k:\n" for level in range(1, 300)) + "  " * 300 + "v\n", "nested more than 200 levels"),
]


@pytest.mark.parametrize(("command", "name", "text", "expected"), _with_commands(YAML_BOMBS))
def test_yaml_that_expands_without_bound_is_refused(tmp_path: Path, command: str, name: str, text: str, expected: str) -> None:
    folder = write_files(tmp_path / name, {"docker-compose.yml": text})
    extra = ["-o", str(tmp_path / "site.toml")] if command == "import" else []
    result = _bounded_cli(command, str(folder), *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


ENDLESS_ENV_FILES: list[tuple[str, Any, str]] = [
    ("env-file-dev-zero", {"docker-compose.yml": COMPOSE_APP + "    env_file: /dev/zero\n"}, "env_file is a character device"),
    ("env-file-fifo", {"docker-compose.yml": COMPOSE_APP + "    env_file: ./fifo.env\n", "fifo.env": None}, "env_file is a FIFO"),
    ("dotenv-fifo", {"docker-compose.yml": COMPOSE_APP, ".env": None}, ".env file is a FIFO"),
    ("env-file-huge", {"docker-compose.yml": COMPOSE_APP + "    env_file: ./big.env\n", "big.env": "sparse"}, "env_file is larger than"),
]


@pytest.mark.parametrize(("command", "name", "layout", "expected"), _with_commands(ENDLESS_ENV_FILES))
def test_env_files_that_never_end_or_hang_are_refused(tmp_path: Path, command: str, name: str, layout: dict[str, str | None], expected: str) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    for file, text in layout.items():
        if text is None:
            _fifo(folder / file)
        elif text == "sparse":
            with open(folder / file, "wb") as handle:
                handle.truncate(64 << 20)
        else:
            (folder / file).write_text(text)
    extra = ["-o", str(tmp_path / "site.toml")] if command == "import" else []
    result = _bounded_cli(command, str(folder), *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_lint_of_a_device_is_refused(tmp_path: Path) -> None:
    result = _bounded_cli("lint", "/dev/zero", cwd=tmp_path)
    assert result.returncode == 2 and "is a character device, not a regular file" in result.stderr


def test_lint_of_a_fifo_compose_file_is_refused(tmp_path: Path) -> None:
    result = _bounded_cli("lint", str(_fifo(tmp_path / "compose.yml")), cwd=tmp_path)
    assert result.returncode == 2 and "is a FIFO (named pipe), not a regular file" in result.stderr


def _profile_folder(tmp_path: Path) -> Path:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    return profile


@pytest.mark.parametrize(
    "command",
    [["build"], ["check"], ["diff"], ["explain"], ["migrate"]],
    ids=lambda args: " ".join(args),
)
def test_a_fifo_profile_is_refused_by_every_command(tmp_path: Path, command: list[str]) -> None:
    fifo = _fifo(tmp_path / "site.toml")
    result = _bounded_cli(*command, str(fifo), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "site.toml: profile is a FIFO (named pipe), not a regular file" in result.stderr


@pytest.mark.parametrize("command", ["build", "check", "diff", "explain"])
def test_a_fifo_sidecar_is_refused(tmp_path: Path, command: str) -> None:
    from omnigen.pipeline import build

    profile = _profile_folder(tmp_path)
    build(profile, tmp_path / "out", environ={}, token=fake_token)
    sidecar = tmp_path / "site.secrets.toml"
    sidecar.unlink()
    _fifo(sidecar)
    args = [command, str(profile)] + (["-o", str(tmp_path / "out")] if command != "explain" else [])
    result = _bounded_cli(*args, cwd=tmp_path)
    if command == "explain":
        assert result.returncode == 0  # explain never reads the sidecar (docs: sizing needs no secret)
        return
    assert result.returncode == 2, result.stderr
    assert "site.secrets.toml: secrets sidecar is a FIFO (named pipe), not a regular file" in result.stderr


@pytest.mark.parametrize("source", ["/dev/zero", "sparse"])
def test_a_profile_that_never_ends_is_refused(tmp_path: Path, source: str) -> None:
    if source == "sparse":
        source = str(tmp_path / "huge.toml")
        with open(source, "wb") as handle:
            handle.truncate(2 << 30)
    for command in ("build", "check"):
        result = _bounded_cli(command, source, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "not a regular file" in result.stderr or "is larger than 1 MiB" in result.stderr


def test_twenty_thousand_services_are_viewed_once() -> None:
    """Rules ask for `services` per service: building the view on each access made lint quadratic."""
    from omnigen.verify.deployment import load_deployment

    text = "services:\n" + "".join(f"  s{index}:\n    image: busybox:1.36\n" for index in range(20_000))
    deployment = load_deployment("/p/docker-compose.yml", lambda path: text if path.endswith(".yml") else None, lambda path: None)
    assert len(deployment.services) == 20_000
    assert deployment.services is deployment.services
