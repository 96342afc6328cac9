"""The site's own config survives rebuilds: omnigen never writes into ./site/, the generated pjsip.conf,
extensions.conf and queues.conf #tryinclude it from a read-only mount, and docker-compose.override.yml is the operator's too: build
leaves it alone, lint still holds it to the policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from omnigen.formats.asteriskconf import parse_conf
from omnigen.plan.plan import SITE
from tests.conftest import ROOT, compile_example, run_cli, run_compose

TRUNK_AND_AGENTS = """\
; site/asterisk/pjsip.conf: the carrier trunk and ten agents (docs/site-config.md)
[carrier]
type=registration
outbound_auth=carrier-auth
server_uri=sip:sip.carrier.example
client_uri=sip:4155550100@sip.carrier.example

[carrier-auth](auth-userpass)
username=4155550100
password=from-the-carrier

[carrier](aor-single)
contact=sip:sip.carrier.example

[carrier](trunk-template)
aors=carrier
outbound_auth=carrier-auth

[carrier]
type=identify
endpoint=carrier
match=sip.carrier.example
"""


def _agents() -> str:
    blocks = []
    for number in range(1001, 1011):
        blocks.append(
            f"[{number}](auth-userpass)\nusername={number}\npassword=agent-{number}-secret\n\n"
            f"[{number}](aor-single)\n\n"
            f"[{number}](endpoint-internal)\nauth={number}\naors={number}\ncallerid=\"Agent {number}\" <{number}>\n"
        )
    return "\n".join(blocks)


# docs/site-config.md's worked example: the carrier's number to the support queue, the agents its members.
# `(+)` adds to a context or queue the generated file defines (Asterisk refuses it if there is none).
INBOUND_DIALPLAN = """\
; site/asterisk/extensions.conf: the carrier's number rings the support queue
[from-trunk](+)
exten => 4155550100,1,NoOp(Support line)
 same => n,Answer()
 same => n,Queue(support,t)
 same => n,Hangup()
"""


def _agent_queue() -> str:
    members = "".join(f"member => PJSIP/{number}\n" for number in range(1001, 1011))
    return f"; site/asterisk/queues.conf: the ten agents answer the support queue\n[support](+)\n{members}"


def _site(tmp_path: Path) -> tuple[Path, Path]:
    profile = tmp_path / "office.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    out = tmp_path / "out"
    assert run_cli("build", str(profile), "-o", str(out)).returncode == 0
    return profile, out


@pytest.mark.parametrize("name", ["extensions.conf", "queues.conf"])
def test_the_generated_dialplan_and_queues_include_the_site_files_last(tmp_path: Path, name: str) -> None:
    _, out = _site(tmp_path)
    generated = (out / "asterisk" / name).read_text()
    assert generated.rstrip().splitlines()[-1] == f"#tryinclude {SITE.include(name)}"
    assert generated.count("#tryinclude") == 1


def test_the_worked_example_adds_to_contexts_and_queues_the_generated_files_define(tmp_path: Path) -> None:
    """Asterisk refuses `[name](+)` for a section it has not read yet: each must exist above the include."""
    _, out = _site(tmp_path)
    for name, site_text in (("extensions.conf", INBOUND_DIALPLAN), ("queues.conf", _agent_queue())):
        generated = parse_conf((out / "asterisk" / name).read_text())
        added = [section.name for section in parse_conf(site_text).sections]
        assert added and all(generated.section(section) is not None for section in added), (name, added)
    queues = {section.name for section in parse_conf((out / "asterisk" / "queues.conf").read_text()).sections}
    assert "support" in queues  # the queue the inbound dialplan rings


def test_the_generated_pjsip_conf_includes_the_site_file_last_from_a_read_only_mount(tmp_path: Path) -> None:
    _, out = _site(tmp_path)
    pjsip = (out / "asterisk" / "pjsip.conf").read_text()
    assert pjsip.rstrip().splitlines()[-1] == f"#tryinclude {SITE.include('pjsip.conf')}"
    # The templates the site file uses are defined before the include.
    for template in ("[trunk-template](!)", "[endpoint-internal](!)", "[auth-userpass](!)", "[aor-single](!)"):
        assert pjsip.index(template) < pjsip.index("#tryinclude")
    compose = (out / "docker-compose.yml").read_text()
    assert f'- "{SITE.host_dir}:{SITE.container_dir}:ro"' in compose
    assert SITE.container_dir == f"/etc/asterisk/{SITE.include_dir}"  # #tryinclude resolves against /etc/asterisk


def test_a_rebuild_keeps_the_site_files_and_check_stays_clean(tmp_path: Path) -> None:
    profile, out = _site(tmp_path)
    site = out / "site" / "asterisk"
    site.mkdir(parents=True)
    (site / "pjsip.conf").write_text(TRUNK_AND_AGENTS + "\n" + _agents())
    (site / "extensions.conf").write_text(INBOUND_DIALPLAN)
    (site / "queues.conf").write_text(_agent_queue())
    before = {path: path.read_bytes() for path in site.iterdir()}
    assert run_cli("check", str(profile), "-o", str(out)).returncode == 0
    # A real change of the profile: every RTP-bearing file is rewritten, the site's are not.
    profile.write_text(profile.read_text().replace("concurrent_calls = 20", "concurrent_calls = 25"))
    rebuilt = run_cli("build", str(profile), "-o", str(out))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "written" in rebuilt.stdout and {path: path.read_bytes() for path in site.iterdir()} == before
    manifest = json.loads((out / ".omnigen-manifest.json").read_text())
    assert not any(name.startswith("site/") for name in manifest["files"])
    checked = run_cli("check", str(profile), "-o", str(out))
    assert checked.returncode == 0, checked.stdout
    assert run_cli("lint", str(out)).returncode == 0


OVERRIDE = """\
services:
  asterisk:
    environment:
      SITE_NOTE: "kept by build"
"""


def test_build_leaves_the_override_alone_and_compose_reads_it_with_the_site_mount(tmp_path: Path) -> None:
    profile, out = _site(tmp_path)
    override = out / "docker-compose.override.yml"
    override.write_text(OVERRIDE)
    profile.write_text(profile.read_text().replace("concurrent_calls = 20", "concurrent_calls = 21"))
    assert run_cli("build", str(profile), "-o", str(out)).returncode == 0
    assert override.read_text() == OVERRIDE
    merged = run_compose(out, "-f", str(override), "config", "--format", "json")
    assert merged.returncode == 0, merged.stderr
    asterisk = json.loads(merged.stdout)["services"]["asterisk"]
    assert asterisk["environment"]["SITE_NOTE"] == "kept by build"
    mounts = {(volume["source"], volume["target"], volume.get("read_only", False)) for volume in asterisk["volumes"]}
    assert (str(out / "site" / "asterisk"), SITE.container_dir, True) in mounts


def test_lint_catches_a_forbidden_setting_placed_in_the_override(tmp_path: Path) -> None:
    _, out = _site(tmp_path)
    (out / "docker-compose.override.yml").write_text("services:\n  asterisk:\n    privileged: true\n    cap_add:\n      - NET_ADMIN\n")
    result = run_cli("lint", str(out), "--format", "json")
    assert result.returncode == 1, result.stdout
    findings = json.loads(result.stdout)["findings"]
    located = {(finding["rule"], Path(finding["file"]).name, finding["line"]) for finding in findings}
    assert ("OV101", "docker-compose.override.yml", 3) in located
    assert ("OV102", "docker-compose.override.yml", 5) in located


def test_every_asterisk_of_a_multi_host_profile_reads_a_site_folder_read_only() -> None:
    """A voice host's bundle binds its ./site/asterisk; stack.yml gives each Asterisk its own volume
    at the same place (Swarm cannot bind a folder of the manager onto another node)."""
    compiled = compile_example(ROOT / "profiles" / "multi-host-4.toml")
    cluster = compiled.plan.cluster
    assert cluster is not None and len(cluster.voice) == 2
    stack = yaml.safe_load(compiled.files["stack.yml"])
    for voice in cluster.voice:
        assert f"{voice.site_volume}:{SITE.container_dir}:ro" in stack["services"][voice.service]["volumes"]
        assert voice.site_volume in stack["volumes"]
        bundle = yaml.safe_load(compiled.files[f"hosts/{voice.host}/docker-compose.yml"])
        assert f"{SITE.host_dir}:{SITE.container_dir}:ro" in bundle["services"]["asterisk"]["volumes"]
        for name in ("pjsip.conf", "extensions.conf", "queues.conf"):
            conf = compiled.files[f"hosts/{voice.host}/asterisk/{name}"]
            assert conf.rstrip().splitlines()[-1] == f"#tryinclude {SITE.include(name)}"
