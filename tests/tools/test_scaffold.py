"""The Copier template (copier.yml + scaffold/) and omnigen/tools/scaffold.py.

- `copier copy` from a git repo of the template, then `make build` in the new repo, offline.
- Every answer the profile model refuses, Copier refuses too, with the model's words
  where Copier lets a validator speak (a table through the real Copier; generated
  answers through Copier's Jinja setup).
- `copier update` between two tagged versions keeps the operator's edits and runs a
  `_migrations` step that renames an answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

from omnigen import __version__
from omnigen.cli import COMMANDS
from omnigen.errors import ProfileError
from omnigen.inputs.profile import TIMEZONE_PATTERN, HostKind, Profile
from omnigen.loading import load_profile, validate_profile
from omnigen.tools.scaffold import (
    BIND_CASES,
    LIMITS_FILE,
    MAX_CALLS,
    PROXY_CASES,
    accepts,
    limits,
    limits_jinja,
    max_calls,
    scaffold_profile,
)
from tests.conftest import ROOT, make_fake_checkout

BIN = Path(sys.executable).parent
COPIER = BIN / "copier"
OMNIGEN = BIN / "omnigen"
COPIER_YML = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
QUESTIONS = {name: spec for name, spec in COPIER_YML.items() if not name.startswith("_") and spec.get("when") is not False}

GOOD: dict[str, Any] = {
    "project_name": "acme",
    "host_kind": "vps",
    "userland_proxy": True,
    "timezone": "UTC",
    "public_ip": "203.0.113.10",
    "bind_ip": "0.0.0.0",
    "subnet": "10.22.22.0/24",
    "concurrent_calls": 20,
}

# Git must work without a global identity and must never reach a network.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "omnigen tests",
    "GIT_AUTHOR_EMAIL": "tests@omnigen.invalid",
    "GIT_COMMITTER_NAME": "omnigen tests",
    "GIT_COMMITTER_EMAIL": "tests@omnigen.invalid",
    "GIT_ALLOW_PROTOCOL": "file",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def offline_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OMNIGEN_", "GIT_"))}
    env.update(GIT_ENV)
    env["NO_COLOR"] = "1"
    return env


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], cwd=cwd, env=offline_env(), capture_output=True, text=True, check=False, timeout=120)


def git(cwd: Path, *args: str) -> None:
    result = run("git", "-c", "init.defaultBranch=main", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr


def template_copy(folder: Path) -> Path:
    """The template's files as they are in this checkout (committed or not)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "copier.yml", folder / "copier.yml")
    shutil.copytree(ROOT / "scaffold", folder / "scaffold", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def commit_and_tag(folder: Path, tag: str) -> None:
    git(folder, "add", "--all")
    git(folder, "commit", "--quiet", "-m", tag)
    git(folder, "tag", tag)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository of the template with one release, tag v1."""
    folder = template_copy(tmp_path_factory.mktemp("template"))
    git(folder, "init", "--quiet")
    commit_and_tag(folder, "v1")
    return folder


def copier_copy(template: Path, destination: Path, answers: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    data = [item for key, value in answers.items() for item in ("--data", f"{key}={value}")]
    return run(COPIER, "copy", "--defaults", *data, *extra, template, destination)


def model_verdict(answers: dict[str, Any]) -> str | None:
    """None when the profile model accepts what these answers scaffold, else its first message as `key: message`."""
    try:
        validate_profile(scaffold_profile(answers), file="omnivoip.toml", text="", env={})
    except ProfileError as error:
        issue = error.issues[0]
        return f"{issue.key}: {issue.message}" if issue.key else issue.message
    return None


# ---------------------------------------------------------------------------
# copier copy + make build


def test_copy_then_make_build_works_offline(template_repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "acme-site"
    make_fake_checkout(tmp_path / "omnivoip")  # build.source = "../omnivoip", beside the site
    copied = copier_copy(template_repo, site, GOOD, "--vcs-ref", "v1")
    assert copied.returncode == 0, copied.stderr

    built = run("make", "build", f"OMNIGEN={OMNIGEN}", cwd=site)
    assert built.returncode == 0, built.stdout + built.stderr
    out = site / "out" / "acme"
    assert (out / "docker-compose.yml").is_file() and (out / ".env").is_file()
    assert (site / "omnivoip.secrets.toml").stat().st_mode & 0o777 == 0o600

    profile = load_profile(site / "omnivoip.toml", {})
    assert tomllib.loads((site / "omnivoip.toml").read_text()) == scaffold_profile(GOOD)
    assert (profile.project.name, str(profile.network.public_ip), profile.capacity.concurrent_calls) == ("acme", "203.0.113.10", 20)

    answers = yaml.safe_load((site / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1"
    assert {key: answers[key] for key in GOOD} == GOOD

    # The secrets sidecar and the generated folder (whose .env holds every credential) are never committed.
    git(site, "init", "--quiet")
    ignored = run("git", "check-ignore", "omnivoip.secrets.toml", "out/acme/.env", "omnivoip.toml", "Makefile", cwd=site)
    assert ignored.stdout.split() == ["omnivoip.secrets.toml", "out/acme/.env"]

    for target in ("check", "up", "down", "logs", "migrate"):
        dry = run("make", "--dry-run", target, cwd=site)
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"
    if "check" in COMMANDS:
        checked = run("make", "check", f"OMNIGEN={OMNIGEN}", cwd=site)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_defaults_alone_scaffold_a_site_that_builds(template_repo: Path, tmp_path: Path) -> None:
    """`copier copy --defaults`: the project is named after the folder, and without a public_ip
    the site is published on 127.0.0.1 only (valid, and exposed to nobody until told otherwise)."""
    site = tmp_path / "acme-site"
    make_fake_checkout(tmp_path / "omnivoip")  # build.source = "../omnivoip", beside the site
    copied = copier_copy(template_repo, site, {}, "--vcs-ref", "v1")
    assert copied.returncode == 0, copied.stderr
    profile = load_profile(site / "omnivoip.toml", {})
    assert (profile.project.name, str(profile.network.bind_ip), profile.network.public_ip) == ("acme-site", "127.0.0.1", None)
    assert profile.host.userland_proxy is True
    built = run("make", "build", f"OMNIGEN={OMNIGEN}", cwd=site)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (site / "out" / "acme-site" / "docker-compose.yml").is_file()


@pytest.mark.parametrize(
    ("folder", "name"),
    [("acme-site", "acme-site"), ("My_Site 2", "my-site-2"), ("2024-tenant.example", "tenant-example"), ("x" * 45 + "-y", "x" * 40)],
)
def test_project_name_defaults_to_the_destination_folder_made_valid(template_repo: Path, tmp_path: Path, folder: str, name: str) -> None:
    copied = copier_copy(template_repo, tmp_path / folder, {"public_ip": "203.0.113.10"}, "--vcs-ref", "v1")
    assert copied.returncode == 0, copied.stderr
    assert load_profile(tmp_path / folder / "omnivoip.toml", {}).project.name == name


def test_a_150_call_lxc_site_needs_the_userland_proxy_off(template_repo: Path, tmp_path: Path) -> None:
    lxc = {**GOOD, "host_kind": "lxc-unprivileged", "concurrent_calls": 150}
    refused = copier_copy(template_repo, tmp_path / "proxy-on", lxc, "--vcs-ref", "v1")
    assert refused.returncode != 0
    assert "capacity.concurrent_calls: 150 calls publish more ports than the port budget of a lxc-unprivileged host allows" in refused.stderr
    copied = copier_copy(template_repo, tmp_path / "proxy-off", {**lxc, "userland_proxy": False}, "--vcs-ref", "v1")
    assert copied.returncode == 0, copied.stderr
    profile = load_profile(tmp_path / "proxy-off" / "omnivoip.toml", {})
    assert (profile.host.kind, profile.host.userland_proxy, profile.capacity.concurrent_calls) == ("lxc-unprivileged", False, 150)


def test_rootless_scaffold_publishes_the_web_ui_above_1024(template_repo: Path, tmp_path: Path) -> None:
    answers = {**GOOD, "host_kind": "rootless"}
    copied = copier_copy(template_repo, tmp_path / "site", answers, "--vcs-ref", "v1")
    assert copied.returncode == 0, copied.stderr
    profile = load_profile(tmp_path / "site" / "omnivoip.toml", {})
    assert (profile.ports.http, profile.ports.https) == (8080, 8443)


def test_ci_workflow_and_pre_commit_config(template_repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert copier_copy(template_repo, site, GOOD, "--vcs-ref", "v1").returncode == 0
    workflow = site / ".github" / "workflows" / "omnigen.yml"
    schema_check = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow)
    assert schema_check.returncode == 0, schema_check.stdout + schema_check.stderr

    steps = yaml.safe_load(workflow.read_text())["jobs"]["check"]["steps"]
    commands = [step["run"].split() for step in steps if "run" in step and step["run"].startswith("omnigen ")]
    assert {command[1] for command in commands} <= set(COMMANDS), commands
    assert commands[-1][:3] == ["omnigen", "check", "omnivoip.toml"]
    env = yaml.safe_load(workflow.read_text())["jobs"]["check"]["env"]
    assert not any(key.upper().startswith("OMNIGEN_") for key in env), "OMNIGEN_* variables are profile overrides"

    hooks_offered = {hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    config = yaml.safe_load((site / ".pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == COPIER_YML["omnigen_repository"]["default"]
    assert repo["rev"] == f"v{__version__}"
    assert {hook["id"] for hook in repo["hooks"]} <= hooks_offered
    check_hook = next(hook for hook in repo["hooks"] if hook["id"] == "omnigen-check")
    assert check_hook["args"] == ["omnivoip.toml", "-o", "out/acme"]


def test_template_metadata_follows_the_package_and_the_model() -> None:
    assert COPIER_YML["omnigen_version"]["default"] == __version__
    assert QUESTIONS["host_kind"]["choices"] == list(get_args(HostKind))
    # Each question's help starts with the profile key it fills and quotes the model's description.
    for name, spec in QUESTIONS.items():
        key = spec["help"].split(":", 1)[0]
        section, field = key.split(".")
        model = Profile.model_fields[section].annotation
        description = model.model_fields[field].description  # type: ignore[union-attr]
        first_sentence = description.split(". ")[0].rstrip(".")
        assert first_sentence in spec["help"], (name, first_sentence)
    # Every default is itself a valid answer (Copier validates defaults too, but only when asked),
    # with a public_ip and without one.
    for public_ip in ("203.0.113.10", ""):
        answers: dict[str, Any] = {"public_ip": public_ip, "_copier_conf": {"dst_path": "/srv/sites/acme-site"}}
        for name, spec in QUESTIONS.items():
            if name not in answers:
                default = spec.get("default")
                answers[name] = ENVIRONMENT.from_string(default).render(answers) if isinstance(default, str) else default
        assert answers["project_name"] == "acme-site"
        assert model_verdict(answers) is None, answers


# ---------------------------------------------------------------------------
# Copier refuses what the model refuses, in the model's words


# (answers on top of GOOD, what Copier says: "model" = the model's own message, None = it accepts,
#  or Copier's own words where its validator cannot speak: choices, type casts, stricter forms).
ANSWER_TABLE: list[tuple[dict[str, Any], str | None]] = [
    ({}, None),
    ({"public_ip": "", "bind_ip": "192.168.1.10"}, None),
    ({"host_kind": "rootless", "concurrent_calls": 1, "timezone": "America/Argentina/Cordoba"}, None),
    ({"host_kind": "bare-metal", "subnet": "172.31.0.0/26", "concurrent_calls": 133}, None),
    ({"subnet": "192.168.0.0/16", "public_ip": "198.51.100.7", "bind_ip": "192.168.1.10"}, None),
    ({"project_name": "a" + "b" * 39, "timezone": "Etc/GMT+3", "host_kind": "docker-desktop", "concurrent_calls": 32}, None),
    ({"project_name": "Acme"}, "model"),
    ({"project_name": "1acme"}, "model"),
    ({"project_name": "acme_site"}, "model"),
    ({"project_name": "acme site"}, "model"),
    ({"project_name": "a" * 41}, "model"),
    ({"project_name": "acme\n"}, "model"),
    ({"project_name": ""}, "model"),
    ({"timezone": "utc"}, "model"),
    ({"timezone": "Europe"}, "model"),
    ({"timezone": "Europe/Paris\n"}, "model"),
    ({"concurrent_calls": 0}, "model"),
    ({"concurrent_calls": -5}, "model"),
    ({"concurrent_calls": 10001}, "model"),
    ({"concurrent_calls": 67}, "capacity.concurrent_calls: 67 calls publish more ports than the port budget of a vps host allows"),
    ({"host_kind": "docker-desktop", "concurrent_calls": 33}, "capacity.concurrent_calls: 33 calls publish more ports than"),
    ({"host_kind": "lxc-unprivileged", "userland_proxy": False, "concurrent_calls": 150}, None),
    ({"host_kind": "vps", "userland_proxy": False, "concurrent_calls": 527}, "capacity.concurrent_calls: 527 calls publish more ports than"),
    ({"host_kind": "rootless", "userland_proxy": False}, "model"),
    ({"subnet": "10.22.22.5/24"}, "model"),
    ({"concurrent_calls": "twenty"}, "invalid literal for int()"),
    ({"host_kind": "k8s"}, "Invalid choice for 'host_kind'"),
    ({"public_ip": "1.2.3"}, "model"),
    ({"public_ip": "256.1.1.1"}, "model"),
    ({"public_ip": "01.2.3.4"}, "model"),
    ({"public_ip": " 1.2.3.4"}, "model"),
    ({"public_ip": "::1"}, "model"),
    ({"public_ip": "0.0.0.0"}, "model"),
    ({"public_ip": "127.0.0.1"}, "model"),
    ({"public_ip": "224.0.0.1"}, "model"),
    ({"public_ip": "239.255.255.255"}, "model"),
    ({"public_ip": "169.254.0.9"}, "model"),
    ({"public_ip": "240.0.0.1"}, "model"),
    ({"public_ip": "255.255.255.255"}, "model"),
    ({"public_ip": "0.0.0.9"}, "model"),
    ({"bind_ip": "224.0.0.1"}, "model"),
    ({"bind_ip": "250.0.0.1"}, "model"),
    ({"bind_ip": "0.3.0.0"}, "model"),
    ({"bind_ip": "1.2.3.4.5"}, "model"),
    ({"bind_ip": ""}, "model"),
    ({"public_ip": "", "bind_ip": "0.0.0.0"}, "model"),
    ({"subnet": "10.22.22.1/24"}, "model"),
    ({"subnet": "10.0.0.0/8"}, "model"),
    ({"subnet": "10.0.0.0/29"}, "model"),
    ({"subnet": "10.0.0.0/28"}, "model"),
    ({"subnet": "10.0.0.0/27"}, "model"),
    ({"subnet": "10.0.0.0/33"}, "model"),
    ({"subnet": "10.22.22.0"}, "model"),
    ({"subnet": "127.0.0.0/24"}, "model"),
    ({"subnet": "100.64.0.0/16"}, "model"),
    ({"subnet": "8.8.0.0/16"}, "model"),
    ({"subnet": "x"}, "model"),
    ({"subnet": "10.0.0.0/"}, "model"),
    # Stricter than the model, which would read these as 10.22.0.0/16: Copier asks for a prefix length.
    ({"subnet": "10.22.0.0/255.255.0.0"}, "network.subnet: write the prefix as a number from 16 to 27"),
    ({"subnet": "10.22.0.0/016"}, "network.subnet: write the prefix as a number from 16 to 27"),
]


def copier_verdict(template: Path, destination: Path, answers: dict[str, Any]) -> str | None:
    """Copier's own verdict: None when it would scaffold these answers, else its message."""
    from copier import run_copy

    try:
        run_copy(str(template), str(destination), data=answers, defaults=True, pretend=True, quiet=True)
    except ValueError as error:
        return str(error).split(": ", 1)[1] if str(error).startswith("Validation error for question") else str(error)
    return None


@pytest.fixture(scope="module")
def table_verdicts(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], str | None, str | None, str | None]]:
    """(answers, expected, Copier's verdict, the model's verdict) for every row, through the real Copier."""
    template = template_copy(tmp_path_factory.mktemp("template-plain"))
    destination = tmp_path_factory.mktemp("never-written")
    rows = []
    for overrides, expected in ANSWER_TABLE:
        answers = {**GOOD, **overrides}
        rows.append((answers, expected, copier_verdict(template, destination, answers), model_verdict(answers) if _typed(answers) else "not a number"))
    return rows


def _typed(answers: dict[str, Any]) -> bool:
    return isinstance(answers["concurrent_calls"], int) and answers["host_kind"] in get_args(HostKind)


def test_every_answer_the_model_refuses_copier_refuses(table_verdicts: list[tuple[dict[str, Any], str | None, str | None, str | None]]) -> None:
    for answers, expected, copier_says, model_says in table_verdicts:
        if model_says is not None:
            assert copier_says is not None, f"Copier accepts {answers}, which the model refuses: {model_says}"
        if copier_says is None:
            assert model_says is None, answers
        if expected is None:
            assert (copier_says, model_says) == (None, None), answers
        elif expected == "model":
            assert copier_says == model_says, answers
        else:
            assert copier_says is not None and copier_says.startswith(expected), (answers, copier_says)


def test_accepted_answers_scaffold_exactly_the_mirrored_profile(template_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scaffold_profile() (which the limits and the agreement tests rely on) is what the template renders."""
    from copier import run_copy

    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    for number, (overrides, expected) in enumerate(ANSWER_TABLE):
        if expected is not None:
            continue
        answers = {**GOOD, **overrides}
        site = tmp_path / f"site{number}"
        run_copy(str(template_repo), str(site), data=answers, defaults=True, quiet=True, vcs_ref="v1")
        assert tomllib.loads((site / "omnivoip.toml").read_text()) == scaffold_profile(answers)
        load_profile(site / "omnivoip.toml", {})


# Copier renders validators with its own sandboxed Jinja: these settings mirror it
# (copier/_main.py Worker.jinja_env), and the test below proves the mirror gives the
# real Copier's verdicts on the whole table before hypothesis relies on it.
def copier_like_environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(ROOT)),
        extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
        **COPIER_YML.get("_envops", {}),
    )


ENVIRONMENT = copier_like_environment()


def jinja_verdict(answers: dict[str, Any]) -> str | None:
    """The first validator (in question order) that refuses, as Copier would report it."""
    for spec in QUESTIONS.values():
        if "validator" not in spec:
            continue
        message = ENVIRONMENT.from_string(spec["validator"]).render(answers).strip()
        if message:
            return message
    return None


def test_the_jinja_mirror_gives_copiers_verdicts(table_verdicts: list[tuple[dict[str, Any], str | None, str | None, str | None]]) -> None:
    for answers, _expected, copier_says, _model_says in table_verdicts:
        if _typed(answers):
            assert jinja_verdict(answers) == copier_says, answers


STRICTER = "network.subnet: write the prefix as a number"


def assert_agree(answers: dict[str, Any]) -> None:
    jinja_says, model_says = jinja_verdict(answers), model_verdict(answers)
    if jinja_says is not None and jinja_says.startswith(STRICTER):
        return  # documented: Copier wants a prefix length where the model also reads netmasks
    if jinja_says is not None and "publish more ports than the port budget" in jinja_says:
        assert model_says is not None and model_says.startswith("capacity.concurrent_calls:"), (answers, model_says)
        return
    assert jinja_says == model_says, answers


ipv4_text = st.one_of(st.ip_addresses(v=4).map(str), st.text(alphabet="0123456789. /:", max_size=18), st.just(""))
agreement = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@agreement
@given(name=st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,39}", fullmatch=True), st.text(max_size=45)))
def test_project_name_agrees_with_the_model(name: str) -> None:
    assert_agree({**GOOD, "project_name": name})


@agreement
@given(timezone=st.one_of(st.from_regex(TIMEZONE_PATTERN.removeprefix("^").removesuffix("$"), fullmatch=True), st.text(max_size=30)))
def test_timezone_agrees_with_the_model(timezone: str) -> None:
    assert_agree({**GOOD, "timezone": timezone})


@agreement
@given(public_ip=ipv4_text, bind_ip=ipv4_text)
def test_addresses_agree_with_the_model(public_ip: str, bind_ip: str) -> None:
    assert_agree({**GOOD, "public_ip": public_ip, "bind_ip": bind_ip})


@agreement
@given(
    subnet=st.one_of(
        st.builds(lambda address, prefix: f"{address}/{prefix}", st.ip_addresses(v=4), st.integers(min_value=0, max_value=40)),
        st.ip_addresses(v=4, network="10.0.0.0/8").map(lambda address: f"{address}/24"),
        st.integers(min_value=14, max_value=32).map(lambda prefix: f"192.168.0.0/{prefix}"),
        st.text(alphabet="0123456789./", max_size=20),
    )
)
def test_subnet_agrees_with_the_model(subnet: str) -> None:
    assert_agree({**GOOD, "subnet": subnet})


@agreement
@given(
    host_kind=st.sampled_from(get_args(HostKind)),
    calls=st.integers(min_value=-10, max_value=12000),
    bind=st.sampled_from(sorted(BIND_CASES)),
    proxy=st.booleans(),
)
def test_calls_agree_with_the_model_for_every_host_kind(host_kind: str, calls: int, bind: str, proxy: bool) -> None:
    assert_agree({**GOOD, **BIND_CASES[bind], "host_kind": host_kind, "userland_proxy": proxy, "concurrent_calls": calls})


# ---------------------------------------------------------------------------
# omnigen/tools/scaffold.py: the limits table


def test_limits_file_matches_the_model() -> None:
    assert LIMITS_FILE.read_text(encoding="utf-8") == limits_jinja(), "scaffold/limits.jinja is stale: run `python -m omnigen.tools.scaffold`"


def test_limits_are_the_exact_boundary() -> None:
    for kind, by_bind in limits().items():
        for bind, by_proxy in by_bind.items():
            for proxy, most in by_proxy.items():
                answers = {**GOOD, **BIND_CASES[bind], "host_kind": kind, "userland_proxy": PROXY_CASES[proxy]}
                if most == 0:  # the model refuses the combination itself (rootless without the proxy)
                    assert kind == "rootless" and proxy == "off" and not accepts({**answers, "concurrent_calls": 1})
                    continue
                assert accepts({**answers, "concurrent_calls": most})
                if most < MAX_CALLS:
                    assert not accepts({**answers, "concurrent_calls": most + 1})
    assert max_calls("vps", "all", "on") == limits()["vps"]["all"]["on"]


# ---------------------------------------------------------------------------
# copier update


def make_v2(template: Path, *, with_migration: bool) -> None:
    """v2 of the template: `concurrent_calls` renamed `calls`, a new Makefile target, a README line."""
    copier_yml = template / "copier.yml"
    text = copier_yml.read_text()
    text = text.replace("\nconcurrent_calls:\n", "\ncalls:\n").replace("check(concurrent_calls, host_kind, bind_ip, userland_proxy)", "check(calls, host_kind, bind_ip, userland_proxy)")
    if with_migration:
        migration = (
            "_migrations:\n"
            "  - version: v2\n"
            "    when: \"{{ _stage == 'before' }}\"\n"
            "    command: [\"{{ _copier_python }}\", \"{{ _copier_conf.src_path }}/scaffold/rename_answer.py\", \"concurrent_calls\", \"calls\"]\n"
        )
        text = text.replace("_migrations: []\n", migration)
    copier_yml.write_text(text)
    project = template / "scaffold" / "project"
    toml = project / "omnivoip.toml.jinja"
    toml.write_text(toml.read_text().replace("{{ concurrent_calls }}", "{{ calls }}"))
    makefile = project / "Makefile.jinja"
    ps_target = "## ps: list the containers\nps:\n\tcd $(OUT) && $(COMPOSE) ps\n\n"
    makefile.write_text(makefile.read_text().replace("## up:", ps_target + "## up:", 1))
    readme = project / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nTemplate v2 adds `make ps`.\n")


@pytest.fixture
def updatable_site(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(template repo at v1, a site copied from v1 with the operator's edits committed)."""
    template = template_copy(tmp_path / "template")
    git(template, "init", "--quiet")
    commit_and_tag(template, "v1")
    site = tmp_path / "site"
    make_fake_checkout(tmp_path / "omnivoip")  # build.source = "../omnivoip", beside the site
    assert copier_copy(template, site, {**GOOD, "concurrent_calls": 30}, "--vcs-ref", "v1").returncode == 0
    with (site / "omnivoip.toml").open("a") as profile:
        profile.write("\n# our own: more Celery workers for the night batch\n[workers]\ncelery = 4\n")
    with (site / "Makefile").open("a") as makefile:
        makefile.write("\n## backup: our own target\nbackup:\n\t./backup.sh\n")
    git(site, "init", "--quiet")
    git(site, "add", "--all")
    git(site, "commit", "--quiet", "-m", "acme site")
    yield template, site


def test_update_keeps_edits_and_migrates_the_renamed_answer(updatable_site: tuple[Path, Path]) -> None:
    template, site = updatable_site
    make_v2(template, with_migration=True)
    commit_and_tag(template, "v2")

    updated = run(COPIER, "update", "--trust", "--defaults", "--vcs-ref", "v2", cwd=site)
    assert updated.returncode == 0, updated.stdout + updated.stderr

    answers = yaml.safe_load((site / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2"
    assert answers["calls"] == 30 and "concurrent_calls" not in answers, answers
    profile_text = (site / "omnivoip.toml").read_text()
    assert "concurrent_calls = 30" in profile_text
    assert "[workers]\ncelery = 4" in profile_text, "the operator's edit was lost"
    makefile = (site / "Makefile").read_text()
    assert "\nps:\n" in makefile and "\nbackup:\n" in makefile
    assert "Template v2 adds `make ps`." in (site / "README.md").read_text()
    assert "<<<<<<<" not in profile_text + makefile, "the update left a conflict"

    built = run("make", "build", f"OMNIGEN={OMNIGEN}", cwd=site)
    assert built.returncode == 0, built.stdout + built.stderr
    assert load_profile(site / "omnivoip.toml", {}).workers.celery == 4


def test_without_the_migration_the_renamed_answer_is_lost(updatable_site: tuple[Path, Path]) -> None:
    """What the `_migrations` step is for: Copier alone drops the old answer and takes the new default."""
    template, site = updatable_site
    make_v2(template, with_migration=False)
    commit_and_tag(template, "v2")
    updated = run(COPIER, "update", "--defaults", "--vcs-ref", "v2", cwd=site)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    answers = yaml.safe_load((site / ".copier-answers.yml").read_text())
    assert answers["calls"] == 20, answers


def test_rename_answer_helper() -> None:
    sys.path.insert(0, str(ROOT / "scaffold"))
    try:
        from rename_answer import rename_answer
    finally:
        sys.path.remove(str(ROOT / "scaffold"))
    text = "_commit: v1\nconcurrent_calls: 30\nproject_name: acme\n"
    assert rename_answer(text, "concurrent_calls", "calls") == "_commit: v1\ncalls: 30\nproject_name: acme\n"
    migrated = rename_answer(text, "concurrent_calls", "calls")
    assert rename_answer(migrated, "concurrent_calls", "calls") == migrated, "a second run changes nothing"
    assert rename_answer(text, "absent", "calls") == text
    with pytest.raises(ValueError, match="both"):
        rename_answer(text + "calls: 5\n", "concurrent_calls", "calls")
