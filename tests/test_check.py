"""omnigen check: 0 up to date, 1 stale/edited/missing, 2 bad input; fast path without pydantic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omnigen.cli import main
from omnigen.commands.check import fast_default_out_dir
from omnigen.loading import load_profile
from omnigen.pipeline import build, default_out_dir
from tests.conftest import EXAMPLES, ROOT, compose_binary, fake_token, run_cli
from tests.faults import photograph

HEAVY = ("pydantic", "pydantic_core", "jinja2", "yaml", "tomlkit", "rich")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built profile in tmp_path (default folder out/vps-nat), cwd = tmp_path, no OMNIGEN_* variables."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.upper().startswith("OMNIGEN_"):
            monkeypatch.delenv(key)
    profile = tmp_path / "site.toml"
    profile.write_text((ROOT / "profiles" / "vps-nat.toml").read_text())
    build(profile, None, environ={}, token=fake_token)
    return profile


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def check_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["check", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def states(report: dict[str, object]) -> dict[str, str]:
    files = report["files"]
    assert isinstance(files, list)
    return {entry["path"]: entry["state"] for entry in files if entry["state"] != "up-to-date"}


def test_fresh_build_is_up_to_date_by_the_fast_path(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check_json(capsys, str(site))
    assert code == 0 and report["up_to_date"] is True and report["fast_path"] is True
    assert report["out_dir"] == str(site.parent / "out" / "vps-nat")
    code, text = check(capsys, str(site), "-o", "out/vps-nat")
    assert code == 0 and "up to date" in text


def importtime(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("OMNIGEN_")}
    command = [sys.executable, "-X", "importtime", "-m", "omnigen", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=120)


def test_fast_path_imports_neither_pydantic_nor_jinja(site: Path) -> None:
    # Built by a fresh process too, so both see the same omnigen code on disk.
    assert run_cli("build", str(site), cwd=site.parent).returncode == 0
    fresh = importtime("check", str(site), cwd=site.parent)
    assert fresh.returncode == 0, fresh.stderr
    imported = set(re.findall(r"\|\s+([\w.]+)\s*$", fresh.stderr, re.M))
    assert "omnigen.write.outputs" in imported, "the importtime report was not captured"
    assert not {name for name in imported if name.split(".")[0] in HEAVY}
    # The same command on a stale folder needs the full stack: the test can tell the difference.
    (site.parent / "out" / "vps-nat" / "nginx" / "nginx.conf").write_text("# edited\n")
    stale = importtime("check", str(site), cwd=site.parent)
    assert stale.returncode == 1
    assert {"pydantic", "jinja2"} <= {name.split(".")[0] for name in re.findall(r"\|\s+([\w.]+)\s*$", stale.stderr, re.M)}


def test_edited_file_is_listed_and_exit_1(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = site.parent / "out" / "vps-nat"
    with (out / "asterisk" / "rtp.conf").open("a") as handle:
        handle.write("rtpend=20000\n")
    code, text = check(capsys, str(site))
    assert code == 1
    assert re.search(r"edited\s+asterisk/rtp\.conf", text) and "--force" in text
    assert states(check_json(capsys, str(site))[1]) == {"asterisk/rtp.conf": "edited"}


def test_changed_profile_makes_files_stale(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.write_text(site.read_text().replace("concurrent_calls = 50", "concurrent_calls = 60"))
    code, report = check_json(capsys, str(site))
    assert code == 1 and report["fast_path"] is False
    changed = states(report)
    assert changed and set(changed.values()) == {"stale"}
    assert {"docker-compose.yml", ".env", "asterisk/rtp.conf"} <= set(changed)
    build(site, None, environ={}, token=fake_token)
    assert check(capsys, str(site))[0] == 0


def test_environment_override_is_an_input(site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIGEN_CAPACITY__CONCURRENT_CALLS", "60")
    code, report = check_json(capsys, str(site))
    assert code == 1 and "asterisk/rtp.conf" in states(report)


def test_comment_only_change_falls_back_to_full_compare_and_passes(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.write_text(site.read_text() + "# a comment changes the bytes, not the output\n")
    code, report = check_json(capsys, str(site))
    assert code == 0 and report["fast_path"] is False and report["up_to_date"] is True


def test_missing_secrets_mean_stale_and_nothing_is_generated(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sidecar = site.with_name("site.secrets.toml")
    sidecar.write_text("\n".join(line for line in sidecar.read_text().splitlines() if not line.startswith("redis_password")) + "\n")
    before = photograph(site.parent)
    code, text = check(capsys, str(site))
    assert code == 1
    assert "redis_password" in text and "never writes secrets" in text
    code, report = check_json(capsys, str(site))
    assert code == 1 and report["missing_secrets"] == ["redis_password"]
    assert photograph(site.parent) == before


def test_no_sidecar_at_all_is_stale(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.with_name("site.secrets.toml").unlink()
    before = photograph(site.parent)
    code, report = check_json(capsys, str(site))
    assert code == 1 and len(report["missing_secrets"]) >= 7  # type: ignore[arg-type]
    assert photograph(site.parent) == before


def test_missing_folder_and_missing_file(site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text = check(capsys, str(site), "-o", str(tmp_path / "nowhere"))
    assert code == 1 and "does not exist" in text
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "out" / "vps-nat" / "nginx" / "nginx.conf").unlink()
    assert states(check_json(capsys, str(site))[1]) == {"nginx/nginx.conf": "missing"}


def test_world_readable_env_is_stale(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(site.parent / "out" / "vps-nat" / ".env", 0o644)
    code, report = check_json(capsys, str(site))
    assert code == 1 and states(report) == {".env": "mode"}


@pytest.mark.parametrize("loosen", ["sidecar", "manifest", "env"])
def test_secret_files_others_can_read_are_exit_1_with_the_fix_and_build_restores_them(
    site: Path, capsys: pytest.CaptureFixture[str], loosen: str
) -> None:
    """The sidecar holds every password, the manifest the sha256 of .env (docs/safe-output.md, Permissions)."""
    out = site.parent / "out" / "vps-nat"
    path = {"sidecar": site.with_name("site.secrets.toml"), "manifest": out / ".omnigen-manifest.json", "env": out / ".env"}[loosen]
    os.chmod(path, 0o644)
    code, text = check(capsys, str(site))
    assert code == 1, text
    assert "has mode 0644 (group or others can read it)" in text
    assert f"chmod 600 {path}" in text or f"chmod 600 {path.relative_to(site.parent)}" in text
    code, report = check_json(capsys, str(site))
    assert code == 1 and report["up_to_date"] is False and report["fast_path"] is False
    if loosen == "sidecar":
        assert report["secrets_file_mode"] == "0644"
    else:
        assert states(report) == {path.name: "mode"}

    assert main(["build", str(site)]) == 0
    assert "made private again" in capsys.readouterr().out
    assert (path.stat().st_mode & 0o777) == 0o600
    code, report = check_json(capsys, str(site))
    assert code == 0 and report["fast_path"] is True


def test_foreign_files_do_not_make_a_folder_stale(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site.parent / "out" / "vps-nat" / "NOTES.md").write_text("ours\n")
    code, report = check_json(capsys, str(site))
    assert code == 0 and report["fast_path"] is True and report["foreign"] == ["NOTES.md"]
    site.write_text(site.read_text() + "# force the full path\n")
    code, report = check_json(capsys, str(site))
    assert code == 0 and report["foreign"] == ["NOTES.md"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: p.write_text("schema_version = 2\n[capacity]\nconcurrent_calls = 'many'\n"), "concurrent_calls"),
        (lambda p: p.write_bytes(b"\xff\xfe"), "UTF-8"),
        (lambda p: p.unlink(), "not found"),
        (lambda p: p.with_name("site.secrets.toml").write_text('redis_password = "changeme"\n'), "placeholder"),
    ],
    ids=["invalid-value", "not-utf8", "missing-profile", "bad-sidecar"],
)
def test_bad_input_is_exit_2(site: Path, capsys: pytest.CaptureFixture[str], setup, expected: str) -> None:  # type: ignore[no-untyped-def]
    setup(site)
    code, text = check(capsys, str(site))
    assert code == 2 and expected in text and "Traceback" not in text


def test_symlinked_output_folder_is_exit_2(site: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "out" / "vps-nat")
    code, text = check(capsys, str(site), "-o", str(tmp_path / "link"))
    assert code == 2 and "symlink" in text


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda p: p.stem)
def test_fast_default_folder_agrees_with_build(profile: Path) -> None:
    assert fast_default_out_dir(profile, profile.read_bytes(), {}) == default_out_dir(profile, load_profile(profile, {}))


def test_fast_default_folder_defers_to_full_validation_when_unsure() -> None:
    site = Path("site.toml")
    assert fast_default_out_dir(site, b"[project]\nname = 'Bad Name'\n", {}) is None
    assert fast_default_out_dir(site, b"[project]\nname = 'ok'\n", {"OMNIGEN_PROJECT__NAME": "other"}) is None
    assert fast_default_out_dir(site, b"not toml [", {}) is None


def test_real_process_exit_codes(site: Path) -> None:
    assert run_cli("check", str(site), cwd=site.parent).returncode == 0
    (site.parent / "out" / "vps-nat" / "docker-compose.yml").write_text("services: {}\n")
    result = run_cli("check", str(site), cwd=site.parent)
    assert result.returncode == 1 and "docker-compose.yml" in result.stdout
    assert run_cli("check", str(site.with_name("absent.toml")), cwd=site.parent).returncode == 2


# --------------------------------------------------------------------------- what Compose will run

HOSTILE_OVERRIDE = """services:
  redis:
    privileged: true
    cap_add: [ALL]
    ports:
      - "0.0.0.0:6379:6379"
"""
SITE_OVERRIDE = """services:
  redis:
    environment:
      SITE_NOTE: "kept by the site"
    labels:
      com.example.site: "acme"
"""


def real_compose(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real Compose in `folder` with no -f: it picks the files itself, as an operator's `docker compose up` does."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run([str(compose_binary()), *args], cwd=folder, capture_output=True, text=True, env=env, check=False, timeout=60)


def test_an_override_that_breaks_the_policy_makes_check_exit_1(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = site.parent / "out" / "vps-nat"
    (out / "docker-compose.override.yml").write_text(HOSTILE_OVERRIDE)
    redis = json.loads(real_compose(out, "config", "--format", "json").stdout)["services"]["redis"]
    assert redis["privileged"] is True and redis["cap_add"] == ["ALL"]  # what Compose would really run

    code, text = check(capsys, str(site))
    assert code == 1, text
    assert "docker-compose.override.yml (not written by omnigen), and the result breaks the policy" in text
    assert main(["lint", str(out)]) == 1
    linted = capsys.readouterr().out
    assert "not written by omnigen (its manifest does not list them), merged by Compose all the same: out/vps-nat/docker-compose.override.yml" in linted
    assert "(OV101)" in linted
    for rule in ("OV101", "OV102", "OV110"):
        assert f"({rule})" in text
    code, report = check_json(capsys, str(site))
    assert code == 1 and report["up_to_date"] is True  # omnigen's own files still match; what runs does not
    [run] = report["compose"]  # type: ignore[misc]
    assert run["breaks_policy"] is True and run["reads"] == ["docker-compose.yml", "docker-compose.override.yml"]
    assert {finding["rule"] for finding in run["findings"] if finding["severity"] == "error"} == {"OV101", "OV102", "OV110"}

    # A disable comment in a file omnigen did not write does not waive the policy.
    (out / "docker-compose.override.yml").write_text("services:\n  redis:\n    privileged: true  # omnigen: disable=OV101 -- trust me\n")
    code, text = check(capsys, str(site))
    assert code == 1 and "(OV101)" in text


def test_a_site_override_within_the_policy_checks_clean_and_build_leaves_it_alone(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = site.parent / "out" / "vps-nat"
    override = out / "docker-compose.override.yml"
    override.write_text(SITE_OVERRIDE)
    assert real_compose(out, "config", "-q").returncode == 0
    code, text = check(capsys, str(site))
    assert code == 0, text
    assert "Compose also reads docker-compose.override.yml (not written by omnigen); the merged configuration keeps to the policy" in text
    assert main(["build", str(site)]) == 0
    assert "left alone (not written by omnigen): docker-compose.override.yml" in capsys.readouterr().out
    assert override.read_text() == SITE_OVERRIDE
    code, report = check_json(capsys, str(site))
    assert code == 0 and report["compose"][0]["breaks_policy"] is False  # type: ignore[index]


def test_a_foreign_compose_yaml_replaces_docker_compose_yml(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = site.parent / "out" / "vps-nat"
    (out / "compose.yaml").write_text("services:\n  web:\n    image: nginx:1.27\n")
    assert set(json.loads(real_compose(out, "config", "--format", "json").stdout)["services"]) == {"web"}
    code, text = check(capsys, str(site))
    assert code == 1, text
    assert "Compose would not run omnigen's docker-compose.yml: compose.yaml (not written by omnigen) replaces it" in text
    assert "remove or rename" in text
    code, report = check_json(capsys, str(site))
    assert code == 1 and report["compose"][0]["replaced"] == ["docker-compose.yml"]  # type: ignore[index]


COMPOSE_NAMES = ["compose.yaml", "compose.yml", "docker-compose.yaml"]
OVERRIDE_NAMES = ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"]


@pytest.mark.parametrize(
    "extra",
    [[name] for name in COMPOSE_NAMES + OVERRIDE_NAMES]
    + [["compose.override.yaml", "docker-compose.override.yml"], ["compose.yml", "docker-compose.override.yaml", "compose.override.yml"]],
    ids=lambda names: "+".join(names),
)
def test_check_picks_the_files_the_real_compose_picks(tmp_path: Path, extra: list[str]) -> None:
    """Each file adds a service named after it; the real Compose's merged services show which files it read."""
    from omnigen.tools.lint import compose_runs

    out = tmp_path / "out"
    out.mkdir()
    ours = "services:\n  ours:\n    image: busybox:1.36\n"
    (out / "docker-compose.yml").write_text(ours)
    for name in extra:
        (out / name).write_text(f"services:\n  {name.replace('.', '-')}:\n    image: busybox:1.36\n")
    services = set(json.loads(real_compose(out, "config", "--format", "json").stdout)["services"])
    [run] = compose_runs(out, {"docker-compose.yml"}, {"": None})
    expected = {"ours" if name == "docker-compose.yml" else name.replace(".", "-") for name in run.reads}
    assert services == expected
    assert bool(run.replaced) == ("ours" not in services)
