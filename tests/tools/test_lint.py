"""omnigen lint: the reference deployment's known defects, the validator variants
it must catch, the command line (output, exit codes, disables) and omnigen's own
outputs linting clean."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from omnigen.cli import main
from omnigen.tools.lint import lint
from omnigen.verify.rules import all_rules
from tests.conftest import EXAMPLES, ROOT, compile_example, run_cli, write_files

REFERENCE = ROOT / "tests" / "reference" / "omnivoip-v2"
COMPOSE = "prod-env/docker-compose.yml"
ENV = "prod-env/.env"
RTP = "configs/asterisk/rtp.conf"
PJSIP = "configs/asterisk/pjsip.conf"
FINDING_LINE = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+): \[(?P<severity>error|warning)\] (?P<message>.+) \((?P<rule>OV\d{3})\)$")


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """A private copy of the reference deployment in its real layout."""
    copy = tmp_path / "omnivoip-v2"
    shutil.copytree(REFERENCE, copy)
    return copy


def _found(folder: Path, calls: int | None = None) -> set[tuple[str, str, int]]:
    result = lint([str(folder / "prod-env")], calls=calls)
    return {(f.rule_id, str(Path(f.file).resolve().relative_to(folder.resolve())), f.line) for f in result.report.findings}


# DOMAIN.md section 1, defect by defect: (rule, file, line).
REFERENCE_DEFECTS = {
    "configs mounted at /etc/asterisk/custom, a folder Asterisk never reads": {("OV206", RTP, 1), ("OV206", PJSIP, 1)},
    "external_media_address=${EXTERNAL_IP}, a variable no service receives": {("OV205", PJSIP, 6), ("OV205", PJSIP, 7)},
    "dialer-api told DIALER_POSTGRES_PORT=5433, the host-side port": {("OV207", COMPOSE, 319)},
    "PostgreSQL, Redis, MinIO, Gearman and the dialer DB published on all interfaces": {
        ("OV110", COMPOSE, 16),
        ("OV110", COMPOSE, 39),
        ("OV110", COMPOSE, 58),
        ("OV110", COMPOSE, 80),
        ("OV110", COMPOSE, 81),
        ("OV110", COMPOSE, 96),
    },
    "CHANGE_ME passwords as defaults": {("OV208", ENV, 145), ("OV208", ENV, 194), ("OV208", ENV, 230), ("OV208", ENV, 267), ("OV208", ENV, 105)},
    "redis password interpolated into URLs unencoded": {("OV209", ENV, 335), ("OV209", ENV, 336), ("OV209", COMPOSE, 166)},
    "redis --requirepass but redis-cli healthcheck without auth": {("OV212", COMPOSE, 62)},
    "rtpend even (the last RTCP port falls outside the range)": {("OV202", RTP, 6)},
}


@pytest.mark.parametrize("defect", sorted(REFERENCE_DEFECTS))
def test_reference_deployment_known_defects(defect: str) -> None:
    found = _found(REFERENCE)
    assert REFERENCE_DEFECTS[defect] <= found, sorted(REFERENCE_DEFECTS[defect] - found)


def test_reference_hundred_ports_are_not_fifty_calls() -> None:
    """The seed's "100 RTP ports = 50 calls": 50 bridged calls need 200 ports."""
    assert ("OV210", RTP, 5) in _found(REFERENCE, calls=50)
    assert ("OV210", RTP, 5) not in _found(REFERENCE, calls=25)


def test_reference_related_locations_name_both_files() -> None:
    result = lint([str(REFERENCE / "prod-env")])
    by_rule = {(f.rule_id, Path(f.file).name, f.line): f for f in result.report.findings}
    dialer = by_rule[("OV207", "docker-compose.yml", 319)]
    assert [(Path(r.file).name, r.line) for r in dialer.related] == [(".env", 269)]
    custom = by_rule[("OV206", "rtp.conf", 1)]
    assert [(Path(r.file).name, r.line) for r in custom.related] == [("docker-compose.yml", 242)]


def test_reference_rtpengine_switched_back_on(reference: Path) -> None:
    """The commented-out rtpengine service, re-enabled: its config's defects surface."""
    compose = reference / COMPOSE
    lines = compose.read_text().split("\n")
    start = lines.index("  # rtpengine:")
    end = lines.index("  #   restart: unless-stopped", start)
    for index in range(start, end + 1):
        lines[index] = lines[index].replace("  # ", "  ", 1)
    compose.write_text("\n".join(lines))
    found = _found(reference)
    conf = "configs/rtpengine/rtpengine.conf"
    assert ("OV213", conf, 11) in found, "listen-ng given twice (the second silently wins)"
    assert ("OV214", conf, 46) in found, "table = 0 (kernel forwarding)"
    interface = [f for f in lint([str(reference / "prod-env")]).report.findings if f.file.endswith("rtpengine.conf") and "interface" in f.message]
    assert interface, "interfaces = PRIVATE_IP;PUBLIC_IP gives rtpengine no usable interface (OV302)"
    assert ("OV302", conf, 3) in found and "no option `interfaces`" in interface[0].message, "the misspelt key is named where it stands"
    assert ("OV102", COMPOSE, start + 8) in found, "cap_add: NET_ADMIN"
    drift = [f for f in lint([str(reference / "prod-env")]).report.findings if f.rule_id == "OV201"]
    assert drift and {Path(r.file).name for f in drift for r in f.related} >= {"rtpengine.conf", ".env"}


def _uncomment_userns(text: str, spelling: str) -> tuple[str, int]:
    line = text.split("\n").index('    #userns_mode: "host"') + 1
    return text.replace('    #userns_mode: "host"', f"    userns_mode: {spelling}", 1), line


def _add_to_service(service: str, setting: list[str]) -> Callable[[str], tuple[str, int]]:
    def edit(text: str) -> tuple[str, int]:
        lines = text.split("\n")
        index = lines.index(f"  {service}:") + 1
        lines[index:index] = ["    " + line for line in setting]
        return "\n".join(lines), index + len(setting)

    return edit


def _widen_compose_range(text: str) -> tuple[str, int]:
    lines = text.split("\n")
    index = lines.index('      - "10000-10100:10000-10100/udp"')
    lines[index] = '      - "10000-10300:10000-10300/udp"'
    return "\n".join(lines), index + 1


# DOMAIN.md section 1: the seed's grep validator catches only the first of these.
VALIDATOR_VARIANTS: dict[str, tuple[Callable[[str], tuple[str, int]], str]] = {
    'userns_mode: "host"': (lambda text: _uncomment_userns(text, '"host"'), "OV105"),
    "userns_mode: host": (lambda text: _uncomment_userns(text, "host"), "OV105"),
    "userns_mode: 'host'": (lambda text: _uncomment_userns(text, "'host'"), "OV105"),
    "network_mode: host on nginx": (_add_to_service("nginx", ["network_mode: host"]), "OV105"),
    "privileged: true": (_add_to_service("asterisk", ["privileged: true"]), "OV101"),
    "cap_add": (_add_to_service("asterisk", ["cap_add:", "  - NET_ADMIN"]), "OV102"),
    "sysctls": (_add_to_service("asterisk", ["sysctls:", "  net.ipv4.ip_unprivileged_port_start: 0"]), "OV104"),
    "pid: host": (_add_to_service("redis", ["pid: host"]), "OV105"),
    "RTP range changed in compose alone": (_widen_compose_range, "OV201"),
}


@pytest.mark.parametrize("variant", list(VALIDATOR_VARIANTS))
def test_every_validator_variant_is_caught(variant: str, reference: Path) -> None:
    edit, rule_id = VALIDATOR_VARIANTS[variant]
    compose = reference / COMPOSE
    before = {finding for finding in _found(reference) if finding[0] == rule_id}
    text, line = edit(compose.read_text())
    compose.write_text(text)
    after = {finding for finding in _found(reference) if finding[0] == rule_id}
    assert (rule_id, COMPOSE, line) in after - before


def test_text_output_is_one_sorted_line_per_finding_and_stable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(REFERENCE / "prod-env")]) == 1
    first = capsys.readouterr().out
    assert main(["lint", str(REFERENCE / "prod-env")]) == 1
    assert capsys.readouterr().out == first
    findings = [FINDING_LINE.match(line) for line in first.split("\n") if FINDING_LINE.match(line)]
    keys = [(m.group("file"), int(m.group("line")), m.group("rule")) for m in findings if m]
    assert len(keys) > 50 and keys == sorted(keys)
    assert re.search(r"^\d+ errors, \d+ warnings in 4 files", first, re.M)
    continuation = [line for line in first.split("\n") if line.startswith("    see ")]
    assert continuation, "drift findings name their other location"


def test_json_output_matches_text(capsys: pytest.CaptureFixture[str]) -> None:
    main(["lint", str(REFERENCE / "prod-env"), "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    main(["lint", str(REFERENCE / "prod-env")])
    text = capsys.readouterr().out
    assert document["summary"]["errors"] == len([f for f in document["findings"] if f["severity"] == "error"])
    for finding in document["findings"]:
        assert f"{finding['file']}:{finding['line']}: [{finding['severity']}] {finding['message']} ({finding['rule']})" in text
    assert {item["variable"] for item in document["unresolved"]} == set()
    assert {"file", "line", "severity", "rule", "name", "message", "service", "related"} <= set(document["findings"][0])


def _clean_output(tmp_path: Path) -> Path:
    profile = next(path for path in EXAMPLES if path.stem == "vps-nat")
    return write_files(tmp_path / "out", compile_example(profile).files)


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _clean_output(tmp_path)
    assert main(["lint", str(folder)]) == 0
    compose = folder / "docker-compose.yml"
    compose.write_text(compose.read_text().replace('    image: "redis:7.4.1-alpine"', '    image: "redis:latest"'))
    assert main(["lint", str(folder)]) == 0, "warnings alone pass"
    assert main(["lint", str(folder), "--strict"]) == 1, "--strict fails on warnings"
    compose.write_text(compose.read_text().replace('    image: "redis:latest"', '    image: "redis:latest"\n    privileged: true'))
    assert main(["lint", str(folder)]) == 1
    capsys.readouterr()
    assert main(["lint", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["lint", str(empty)]) == 2
    assert "no compose file here" in capsys.readouterr().err


def test_a_deployment_one_folder_down_is_named_in_the_hint(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The v2 layout keeps its compose file in prod-env/ (which `omnigen import` accepts): lint points there."""
    assert main(["lint", str(reference)]) == 2
    error = capsys.readouterr().err
    assert f"{reference}: no compose file here" in error
    assert f"the compose file is one folder down: run `omnigen lint {reference / 'prod-env'}`" in error
    assert main(["lint", str(reference / "prod-env")]) == 1  # the hint's command works


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"services:\n  app:\n    image: [unclosed\n", "invalid YAML"),
        (b"services:\n  app:\n    image: \xff\xfe\n", "cannot read compose file"),
        (b"- just\n- a list\n", "must be a mapping"),
    ],
)
def test_unreadable_input_exits_2_with_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "compose.yaml").write_bytes(content)
    result = run_cli("lint", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(rf"compose\.yaml:\d+: .*{message}", result.stderr), result.stderr


def test_invalid_env_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text('services:\n  app:\n    image: "busybox:1.36"\n')
    (tmp_path / ".env").write_text("GOOD=1\nnot a variable line\n")
    result = run_cli("lint", str(tmp_path))
    assert result.returncode == 2 and re.search(r"\.env:2: ", result.stderr), result.stderr


def test_disable_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["lint", str(REFERENCE / "prod-env"), "--disable", "OV109,image-tag", "--disable", "ov113"])
    out = capsys.readouterr().out
    assert not re.search(r"\((OV109|OV111|OV113)\)$", out, re.M)
    assert re.search(r"^  command line: OV109,OV111,OV113 for this run: suppressed \d+ findings$", out, re.M), out
    assert main(["lint", str(REFERENCE / "prod-env"), "--disable", "OV999"]) == 2


DISABLED = """\
services:
  web:  # omnigen: disable=OV113,OV112 -- sized and probed by the platform
    image: "nginx:1.27.3"
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    ports:
      - "8080:80"  # omnigen: disable=OV109 -- behind the host firewall
      - "8081:81"
      # omnigen: disable-next-line=port-all-interfaces
      - "8082:82"
    environment:
      NOTE: "# omnigen: disable=OV109 is only text inside a string"
  db:
    image: "postgres:15.8-alpine"
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    privileged: true  # omnigen: disable=OV999
"""


def test_disable_comments(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(DISABLED)
    (tmp_path / ".env").write_text("DB_PASSWORD=changeme  # omnigen: disable=OV208 -- local test stack\n")
    result = lint([str(tmp_path)])
    active = {(f.rule_id, f.line) for f in result.report.findings}
    suppressed = {(f.rule_id, f.line) for f, _ in result.report.suppressed}
    assert ("OV109", 7) in suppressed and ("OV109", 10) in suppressed
    assert ("OV109", 8) in active, "a disable applies to its own line only"
    assert {("OV113", 2), ("OV112", 2)} <= suppressed, "a disable on the service key covers the service"
    assert ("OV113", 13) in active and ("OV112", 13) in active, "and only that service"
    assert ("OV101", 17) in active, "an unknown rule disables nothing"
    assert ("OV001", 17) in active, "and is reported"
    assert ("OV208", 1) in {(f.rule_id, f.line) for f, _ in result.report.suppressed if f.file.endswith(".env")}
    wheres = {(use.where.rsplit("/", 1)[-1], use.suppressed) for use in result.report.disables}
    assert ("compose.yaml:2", 2) in wheres and ("compose.yaml:17", 0) in wheres and (".env:1", 1) in wheres


def test_every_disable_is_listed_in_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text(DISABLED)
    main(["lint", str(tmp_path)])
    out = capsys.readouterr().out
    summary = out[out.index("disabled:") :]
    assert re.search(r"compose\.yaml:2: OV113,OV112 for service 'web': suppressed 2 findings -- sized and probed by the platform", summary)
    assert re.search(r"compose\.yaml:7: OV109 for line 7: suppressed 1 finding -- behind the host firewall", summary)
    assert re.search(r"compose\.yaml:9: port-all-interfaces for line 10: suppressed 1 finding", summary)
    assert re.search(r"compose\.yaml:17: OV999 for line 17: suppressed nothing \(unused\)", summary)


def test_disable_file_in_an_asterisk_config(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        'services:\n  asterisk:\n    image: "omnivoip/asterisk:2.0.0"\n    volumes:\n      - ./rtp.conf:/etc/asterisk/rtp.conf:ro\n'
    )
    (tmp_path / "rtp.conf").write_text("; omnigen: disable-file=OV202 -- lab box\n[general]\nrtpstart=10001\nrtpend=10100\n")
    result = lint([str(tmp_path)])
    assert not [f for f in result.report.findings if f.rule_id == "OV202"]
    assert len([f for f, _ in result.report.suppressed if f.rule_id == "OV202"]) == 2


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--list-rules"]) == 0
    out = capsys.readouterr().out
    for item in all_rules():
        assert re.search(rf"^{item.id}  {item.severity}", out, re.M)


def test_env_file_option(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    image: \"busybox:1.36\"\n    privileged: ${PRIVILEGED}\n")
    (tmp_path / "prod.env").write_text("PRIVILEGED=true\n")
    assert {f.rule_id for f in lint([str(tmp_path)]).report.findings} >= {"OV211"}
    with_env = lint([str(tmp_path)], env_file=str(tmp_path / "prod.env"))
    assert "OV101" in {f.rule_id for f in with_env.report.findings}
    assert "OV211" not in {f.rule_id for f in with_env.report.findings}


def test_a_path_to_an_override_file_lints_its_deployment(tmp_path: Path) -> None:
    """pre-commit passes changed files: an override alone still lints the whole deployment, once."""
    (tmp_path / "docker-compose.yml").write_text('services:\n  app:\n    image: "busybox:1.36"\n')
    (tmp_path / "docker-compose.override.yml").write_text("services:\n  app:\n    privileged: true\n")
    result = lint([str(tmp_path / "docker-compose.override.yml"), str(tmp_path / "docker-compose.yml")])
    assert len(result.deployments) == 1
    assert [(Path(f.file).name, f.line) for f in result.report.findings if f.rule_id == "OV101"] == [("docker-compose.override.yml", 3)]


@pytest.mark.parametrize("profile", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_output_lints_clean(profile: Path, tmp_path: Path) -> None:
    """Zero errors and zero warnings, with the profile's own call count, through the real CLI."""
    compiled = compile_example(profile)
    folder = write_files(tmp_path / profile.stem, compiled.files)
    result = run_cli("lint", str(folder), "--strict", "--calls", str(compiled.plan.rtp.calls))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("0 errors, 0 warnings in "), result.stdout
