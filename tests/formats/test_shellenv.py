"""The stack's .env: single-quoted so that `sh` (deploy-stack.sh sources it) and the real Compose
(and so `omnigen lint`) read exactly the same bytes, and values they would not are refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigen.formats import dotenv
from omnigen.formats.shellenv import encode_line, encode_value, unrepresentable
from tests.conftest import ROOT, compose_binary, run_cli

# Everything that expands or ends a value in one reader or the other, except what is refused.
AWKWARD = [
    "plain",
    "with spaces  and\ttab",
    "dollar $HOME ${HOME} $$ $(id) `id`",
    'double "quotes" and \\backslash\\ in the middle \\n',
    "hash # not a comment",
    "semi;colon&amp|pipe<>",
    "unicode é ✓ 𝄞",
    "=leading equals",
    " leading and trailing space ",
]


def _sh_reads(env_file: Path, keys: list[str]) -> dict[str, str]:
    """What deploy-stack.sh's `set -a; . ./.env` exports, printed as JSON by python."""
    script = f'set -a; . "{env_file}"; set +a; exec python3 -c "import json, os, sys; print(json.dumps({{k: os.environ[k] for k in sys.argv[1:]}}))" {" ".join(keys)}'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    values: dict[str, str] = json.loads(result.stdout)
    return values


def _compose_reads(folder: Path, keys: list[str]) -> dict[str, str]:
    """What the real Compose substitutes for ${KEY} with this .env."""
    lines = ["services:", "  probe:", '    image: "busybox:1.36"', "    environment:"]
    lines += [f'      {key}: "${{{key}}}"' for key in keys]
    (folder / "docker-compose.yml").write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [str(compose_binary()), "--project-directory", str(folder), "-f", str(folder / "docker-compose.yml"), "--env-file", str(folder / ".env"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    environment: dict[str, str] = json.loads(result.stdout)["services"]["probe"]["environment"]
    # `config` writes a literal `$` back as `$$` so its output is valid input again.
    return {key: value.replace("$$", "$") for key, value in environment.items()}


def test_sh_compose_and_omnigen_read_the_same_bytes(tmp_path: Path) -> None:
    keys = [f"VALUE_{index}" for index in range(len(AWKWARD))]
    text = "# comment line\n" + "\n".join(encode_line(key, value) for key, value in zip(keys, AWKWARD, strict=True)) + "\n"
    (tmp_path / ".env").write_text(text, encoding="utf-8")
    expected = dict(zip(keys, AWKWARD, strict=True))
    assert dotenv.as_dict(dotenv.parse(text)) == expected
    assert _sh_reads(tmp_path / ".env", keys) == expected
    assert _compose_reads(tmp_path, keys) == expected


@pytest.mark.parametrize(("value", "why"), [("it's", "single quote"), ("two\nlines", "line break"), ("cr\r", "carriage return"), ("nul\x00", "NUL"), ("ends\\", "ends with a backslash")])
def test_values_the_readers_disagree_on_are_refused(value: str, why: str) -> None:
    assert why in str(unrepresentable(value))
    with pytest.raises(dotenv.DotenvError):
        encode_value(value)


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_every_value_is_refused_or_read_back_by_omnigen(value: str) -> None:
    if unrepresentable(value):
        with pytest.raises(dotenv.DotenvError):
            encode_value(value)
        return
    assert dotenv.as_dict(dotenv.parse(encode_line("KEY", value) + "\n")) == {"KEY": value}


def test_a_multi_host_build_refuses_an_unrepresentable_secret_at_its_sidecar_key(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "multi-host-2.toml").read_text())
    sidecar = tmp_path / "site.secrets.toml"
    sidecar.write_text("# mine\nredis_password = \"it's-a-secret-value-0123\"\n")
    sidecar.chmod(0o600)
    result = run_cli("build", str(profile), "-o", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert f"{sidecar}:2: redis_password: a multi-host profile writes secrets single-quoted" in result.stderr
    assert "it's-a-secret" not in result.stderr, "a secret is never echoed"
    assert not (tmp_path / "out").exists()
    # The same secret is fine for a single-host profile (its .env is double-quoted).
    single = tmp_path / "one.toml"
    single.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    (tmp_path / "one.secrets.toml").write_text(sidecar.read_text())
    (tmp_path / "one.secrets.toml").chmod(0o600)
    assert run_cli("build", str(single), "-o", str(tmp_path / "single")).returncode == 0
