"""The site's own config survives rebuilds: omnigen never writes into ./site/, the generated pjsip.conf
#tryincludes it from a read-only mount, and docker-compose.override.yml is the operator's too: build
leaves it alone, lint still holds it to the policy.
"""

from __future__ import annotations

import json
from pathlib import Path

from omnigen.plan import SITE
from tests.conftest import ROOT, run_cli, run_compose

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


def _site(tmp_path: Path) -> tuple[Path, Path]:
    profile = tmp_path / "office.toml"
    profile.write_text((ROOT / "profiles" / "lan-office.toml").read_text())
    out = tmp_path / "out"
    assert run_cli("build", str(profile), "-o", str(out)).returncode == 0
    return profile, out


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
    (site / "extensions.conf").write_text("[from-trunk]\nexten => 4155550100,1,Queue(support)\n")
    (site / "queues.conf").write_text("[support]\nstrategy=rrmemory\n")
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
