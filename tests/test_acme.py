"""tls.mode = "acme" for real: pebble (Let's Encrypt's ACME test server), the generated client script
driving the real lego, and the real nginx with the generated nginx.conf and reload wrapper.

Everything runs as processes on loopback, stopped by pid; no Docker:

- pebble-challtestsrv answers every DNS query with 127.0.0.1; pebble uses it and validates
  HTTP-01 on a loopback port, where nginx's HTTP server listens;
- `omnigen build` (as root, as on a server) writes nginx.conf, tls/acme-renew.sh,
  tls/nginx-reload-on-renewal.sh and the bootstrap self-signed pair, and gives the key and
  ./acme to nginx's user (101); nginx and the client then run as uid 101 without
  capabilities, as their containers do;
- only paths and ports are adapted: container paths become the test folder's, nginx's
  listen ports loopback ports, the upstream names 127.0.0.1, the reload check 1 s.

The test waits until nginx serves a certificate issued by pebble's CA: obtained by lego over
HTTP-01 through nginx's webroot, installed by the script, and loaded by nginx's reload.
pebble, pebble-challtestsrv, lego and nginx come from .ci/install-tls-firewall.sh and
.ci/install-daemons.sh; a missing one fails, never skips.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnigen.catalog.services import NGINX_UID
from omnigen.formats.nginxconf import parse_nginx
from tests.conftest import run_cli
from tests.daemons import Daemon

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DOMAIN = "voip.acme-test.example"

PROFILE = f"""\
schema_version = 2
[build]
prebuilt = true
[project]
name = "acmetest"
domain = "{DOMAIN}"
[network]
bind_ip = "192.168.1.10"
[capacity]
concurrent_calls = 2
[tls]
mode = "acme"
acme_email = "ops@acme-test.example"
acme_server = "https://127.0.0.1:{{acme_port}}/dir"
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs nginx and lego as nginx's uid, as the containers do: needs root")


def tool(name: str) -> str:
    found = shutil.which(name, path=SEARCH_PATH)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with .ci/install-tls-firewall.sh / .ci/install-daemons.sh")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(name: str, command: list[str], folder: Path, env: dict[str, str]) -> Daemon:
    log = folder / f"{name}.log"
    with open(log, "wb") as handle:
        os.chown(log, NGINX_UID, NGINX_UID)  # nginx reopens /dev/stderr and /dev/stdout as its own user
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    return Daemon(process, log, name)


def as_nginx_user(command: list[str]) -> list[str]:
    """uid/gid 101 without capabilities: what nginx-unprivileged and the acme service run as (cap_drop ALL)."""
    return [tool("setpriv"), f"--reuid={NGINX_UID}", f"--regid={NGINX_UID}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", *command]


def wait_for(condition: object, what: str, processes: list[Daemon], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        for running in processes:
            if running.process.poll() is not None:
                pytest.fail(f"{running.name} exited with {running.process.returncode} while waiting for {what}:\n{running.output(tail=4000)}")
        time.sleep(0.3)
    logs = "\n".join(f"--- {running.name}\n{running.output(tail=4000)}" for running in processes)
    pytest.fail(f"timed out waiting for {what}\n{logs}")


def pebble_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for pebble's own HTTPS listener (Debian ships none); lego trusts the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omnigen test CA for pebble")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1)).add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = (folder / "pebble-ca.pem", folder / "pebble-cert.pem", folder / "pebble-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def served_issuer(port: int) -> str | None:
    """The issuer of the certificate nginx serves for DOMAIN on this loopback port (None if it does not answer)."""
    from cryptography import x509

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw, context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    assert der is not None
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


@pytest.fixture(scope="module")
def acme_run() -> Iterator[tuple[Path, int, list[Daemon]]]:
    # Not under pytest's 0700 base folder: uid 101 walks into it, as into the output folder.
    folder = Path(tempfile.mkdtemp(prefix="omnigen-acme-"))
    os.chmod(folder, 0o755)
    acme_port, dns_port, http_port, https_port = free_port(), free_port(), free_port(), free_port()
    profile = folder / "acmetest.toml"
    profile.write_text(PROFILE.format(acme_port=acme_port))
    out = folder / "out"
    built = run_cli("build", str(profile), "-o", str(out))
    assert built.returncode == 0, built.stderr
    assert (out / "certs" / "privkey.pem").stat().st_uid == NGINX_UID and (out / "acme").stat().st_uid == NGINX_UID

    ca, cert, key = pebble_tls(folder)
    config = folder / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme_port}", "managementListenAddress": f"127.0.0.1:{free_port()}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))  # fmt: skip
    env = {"PATH": SEARCH_PATH, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}

    # Container paths -> the test folder; nginx's listen ports -> loopback; upstreams -> 127.0.0.1.
    acme_dir, bin_dir = out / "acme", folder / "bin"
    bin_dir.mkdir()
    nginx_conf = out / "nginx" / "nginx.conf"
    scratch = folder / "nginx-tmp"  # the container's /tmp: nginx's pid and temp files, writable by its user
    scratch.mkdir()
    os.chown(scratch, NGINX_UID, NGINX_UID)
    text = nginx_conf.read_text().replace(" /tmp/", f" {scratch}/")
    text = text.replace("/var/lib/acme", str(acme_dir)).replace("/etc/nginx/certs", str(out / "certs"))
    for upstream in parse_nginx(text).find("upstream"):
        for server in upstream.find("server"):
            text = text.replace(f"server {server.args[0]};", f"server 127.0.0.1:{server.args[0].rpartition(':')[2]};")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{http_port};").replace("listen 8443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    adapted_conf = folder / "nginx.conf"
    adapted_conf.write_text(text)
    # The wrapper calls `nginx`: a shim puts the adapted config and prefix in front of every call.
    shim = bin_dir / "nginx"
    shim.write_text(f'#!/bin/sh\nexec {tool("nginx")} -p {folder} -c {adapted_conf} -e stderr "$@"\n')
    reload_script = folder / "nginx-reload.sh"
    reload_script.write_text((out / "tls" / "nginx-reload-on-renewal.sh").read_text().replace("/var/lib/acme", str(acme_dir)).replace("sleep 60 &", "sleep 1 &"))
    client_script = folder / "acme-renew.sh"
    client_script.write_text((out / "tls" / "acme-renew.sh").read_text().replace("/var/lib/acme", str(acme_dir)).replace("/bootstrap", str(out / "certs"))
                             .replace("http://nginx:8080/", f"http://127.0.0.1:{http_port}/"))
    for path in (shim, reload_script, client_script, adapted_conf, folder / "pebble-ca.pem"):
        os.chmod(path, 0o755)

    processes: list[Daemon] = []
    try:
        processes.append(start("challtestsrv", [tool("pebble-challtestsrv"), "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                                                "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}", "-defaultIPv6", ""], folder, env))  # fmt: skip
        processes.append(start("pebble", [tool("pebble"), "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"], folder, env))
        wait_for(lambda: _listening(acme_port), "pebble's ACME port", processes)
        # The client must see the bootstrap pair before nginx starts, as `depends_on: acme: service_healthy` ensures.
        client_env = {"PATH": f"{SEARCH_PATH}", "LEGO_CA_CERTIFICATES": str(ca), "HOME": str(acme_dir)}
        processes.append(start("acme client", as_nginx_user(["/bin/sh", str(client_script)]), folder, client_env))
        wait_for(lambda: (acme_dir / "live" / "fullchain.pem").exists(), "the bootstrap certificate in the live folder", processes)
        processes.append(start("nginx", as_nginx_user(["/bin/sh", str(reload_script)]), folder, {"PATH": f"{bin_dir}:{SEARCH_PATH}"}))
        wait_for(lambda: _listening(https_port), "nginx's HTTPS port", processes)
        yield out, https_port, processes
    finally:
        for running in reversed(processes):
            running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_nginx_starts_on_the_bootstrap_certificate_then_serves_the_one_pebble_issued(acme_run: tuple[Path, int, list[Daemon]]) -> None:
    out, https_port, processes = acme_run
    wait_for(lambda: "Pebble" in (served_issuer(https_port) or ""), "nginx to serve a certificate issued by pebble", processes, seconds=120)
    live = (out / "acme" / "live" / "fullchain.pem").read_text()
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(live.encode())[0]
    assert DOMAIN in [str(name) for name in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)]
    key = out / "acme" / "live" / "privkey.pem"
    assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (NGINX_UID, 0o600)
    # Still the same processes: nginx was reloaded, not restarted.
    assert all(running.process.poll() is None for running in processes)


def test_the_renewal_pass_leaves_a_certificate_that_is_not_due_alone(acme_run: tuple[Path, int, list[Daemon]]) -> None:
    """The script's next pass runs `lego ... renew --days 30`: with a fresh certificate it must succeed and change nothing."""
    out, https_port, processes = acme_run
    wait_for(lambda: "Pebble" in (served_issuer(https_port) or ""), "the first certificate", processes, seconds=120)
    script = (out / "tls" / "acme-renew.sh").read_text()
    assert "renew --days 30" in script and "lego --accept-tos" in script
    acme_dir = out / "acme"
    issued = acme_dir / "lego" / "certificates" / f"{DOMAIN}.crt"
    before = issued.read_bytes()
    server = next(line for line in script.splitlines() if "--server" in line).split("--server ", 1)[1].split(" ", 1)[0].strip("'")
    renew = subprocess.run(
        as_nginx_user([tool("lego"), "--accept-tos", "--email", "ops@acme-test.example", "--server", server, "--domains", DOMAIN,
                       "--http", "--http.webroot", str(acme_dir / "webroot"), "--path", str(acme_dir / "lego"), "renew", "--days", "30"]),
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": SEARCH_PATH, "LEGO_CA_CERTIFICATES": str(out.parent / "pebble-ca.pem"), "HOME": str(acme_dir)},
    )  # fmt: skip
    assert renew.returncode == 0, renew.stdout + renew.stderr
    assert issued.read_bytes() == before
