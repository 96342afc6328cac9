"""The certificate nginx serves: generated once, or the operator's own files, checked before anything is written.

nginx.conf names `certs/fullchain.pem` and `certs/privkey.pem`; without them nginx
exits at `docker compose up`. `[tls] mode`:

- "self-signed" (default): an ECDSA P-256 key and a certificate for project.domain,
  public_ip and bind_ip, generated once with the `cryptography` library and kept
  beside the profile in `<stem>.tls/` (like the secrets sidecar). A rebuild reuses
  them; they are generated again only when removed, expired, or when the names the
  profile gives no longer match (a new domain).
- "files": tls.certificate (the chain, leaf first) and tls.key, read at every build
  and refused (exit 2) unless the PEM parses, the key matches the leaf, the leaf is
  valid now and it covers project.domain.
- "acme": nginx starts on the self-signed certificate above; the ACME client service
  (templates, docs/tls.md) replaces it with a CA-issued one over HTTP-01.

Reading the sidecar and the operator's files happens here (like load_secrets);
writing the sidecar is the build's (pipeline.py). `now` is always passed in.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omnigen.errors import InputIssue, ProfileError
from omnigen.inputs.fingerprint import TLS_CHAIN, TLS_KEY, tls_sidecar_dir
from omnigen.inputs.tomlpos import key_lines

if TYPE_CHECKING:
    from cryptography import x509

    from omnigen.inputs.profile import Profile

SELF_SIGNED_DAYS = 825  # the longest validity Apple platforms accept for a TLS server certificate
EXPIRY_WARNING_DAYS = 30
MAX_PEM_BYTES = 1 << 20

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class TlsMaterial:
    chain_pem: str
    key_pem: str
    not_after: datetime.datetime
    names: tuple[str, ...]
    # Written to `<stem>.tls/` by this build (self-signed, acme bootstrap); False when reused or the operator's files.
    generated: bool
    source: str


def wanted_names(profile: Profile) -> tuple[str, ...]:
    """The names a generated certificate covers: the domain, then the addresses browsers may use."""
    network = profile.network
    names = [profile.project.domain] if profile.project.domain else []
    names += [str(address) for address in (network.public_ip, network.bind_ip) if address is not None and not address.is_unspecified]
    if network.lan is not None:
        names.append(str(network.lan.address))
    return tuple(dict.fromkeys(names)) or ("localhost",)


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    from cryptography import x509

    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def generate_self_signed(names: tuple[str, ...], now: datetime.datetime) -> tuple[str, str]:
    """(certificate PEM, PKCS#8 key PEM) of a new self-signed server certificate for `names`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "omnigen self-signed")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of browsers drift
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@dataclass(frozen=True)
class Inspected:
    leaf: x509.Certificate
    names: tuple[str, ...]
    problems: tuple[str, ...]


def certificate_names(leaf: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [str(name) for name in san.get_values_for_type(x509.DNSName)]
    return tuple(dns + [str(address) for address in san.get_values_for_type(x509.IPAddress)])


def covers(names: tuple[str, ...], host: str) -> bool:
    """RFC 6125: an exact name, or a wildcard standing for exactly the leftmost label."""
    host = host.lower().rstrip(".")
    for name in (name.lower().rstrip(".") for name in names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def inspect_pem(chain_pem: str, key_pem: str, now: datetime.datetime, domain: str | None) -> Inspected | list[str]:
    """The leaf and what is wrong with the pair (empty when it can be served); a list of reasons if it cannot be read at all."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as exc:
        return [f"the certificate chain is not PEM certificates ({exc})"]
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        return ["the private key is encrypted; nginx needs it unencrypted (keep the file private instead)"]
    except ValueError as exc:
        return [f"the private key is not a PEM private key ({str(exc).splitlines()[0]})"]
    leaf = chain[0]
    problems = []
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        problems.append("the private key does not match the certificate (the first one in the chain)")
    if leaf.not_valid_after_utc <= now:
        problems.append(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    elif leaf.not_valid_before_utc > now:
        problems.append(f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    names = certificate_names(leaf)
    if domain and not covers(names, domain):
        problems.append(f"the certificate does not cover project.domain {domain} (it names {', '.join(names) or 'nothing'})")
    return Inspected(leaf, names, tuple(problems))


def expiry_warning(chain_pem: str, now: datetime.datetime, where: str) -> str | None:
    """A warning when the served certificate expires within EXPIRY_WARNING_DAYS (or has), else None."""
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    except ValueError:
        return f"{where}: not a PEM certificate; nginx will not start"
    left = leaf.not_valid_after_utc - now
    if left.total_seconds() <= 0:
        return f"{where}: the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}; browsers refuse it"
    if left <= datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return f"{where}: the certificate expires on {leaf.not_valid_after_utc:%Y-%m-%d} (in {left.days} days); renew it"
    return None


def _read(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_PEM_BYTES + 1)
    if len(data) > MAX_PEM_BYTES:
        raise ValueError(f"larger than {MAX_PEM_BYTES // 1024} KiB: not a PEM file")
    return data.decode("ascii")


def _profile_issue(profile_path: Path, key: str, message: str, hint: str) -> ProfileError:
    try:
        line = key_lines(profile_path.read_text(encoding="utf-8")).get(tuple(key.split(".")))
    except (OSError, UnicodeDecodeError):
        line = None
    return ProfileError([InputIssue(str(profile_path), key, message, line=line, hint=hint)])


def _operator_files(profile: Profile, profile_path: Path, now: datetime.datetime) -> TlsMaterial:
    tls = profile.tls
    assert tls.certificate is not None and tls.key is not None, "validation requires both in files mode"
    base = profile_path.parent
    texts: dict[str, str] = {}
    for key, name in (("tls.certificate", tls.certificate), ("tls.key", tls.key)):
        path = base / name
        try:
            texts[key] = _read(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _profile_issue(profile_path, key, f"cannot read {path} ({reason})", "give the path of a PEM file, relative to the profile") from None
    found = inspect_pem(texts["tls.certificate"], texts["tls.key"], now, profile.project.domain)
    problems = found if isinstance(found, list) else list(found.problems)
    if problems or isinstance(found, list):
        raise _profile_issue(
            profile_path, "tls.certificate", "; ".join(problems), 'fix or renew the files, or set tls.mode = "self-signed" or "acme"'
        )
    return TlsMaterial(texts["tls.certificate"], texts["tls.key"], found.leaf.not_valid_after_utc, found.names, False, f"{base / tls.certificate}")


def _sidecar(profile: Profile, profile_path: Path, now: datetime.datetime, generate: bool) -> TlsMaterial:
    folder = tls_sidecar_dir(profile_path)
    names = wanted_names(profile)
    try:
        chain_pem, key_pem = _read(folder / TLS_CHAIN), _read(folder / TLS_KEY)
    except FileNotFoundError:
        chain_pem = key_pem = ""
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ProfileError([InputIssue(str(folder), "", f"cannot read the certificate kept for this profile ({exc})", hint=f"remove {folder} to have it generated again")]) from None
    if chain_pem and key_pem:
        found = inspect_pem(chain_pem, key_pem, now, None)
        # Reused unless it cannot be served any more or the profile now names other hosts.
        if not isinstance(found, list) and not found.problems and set(found.names) == set(names):
            return TlsMaterial(chain_pem, key_pem, found.leaf.not_valid_after_utc, found.names, False, str(folder))
    chain_pem, key_pem = generate_self_signed(names, now)
    # check and diff compile without writing: a certificate they generate never leaves the process.
    return TlsMaterial(chain_pem, key_pem, now + datetime.timedelta(days=SELF_SIGNED_DAYS), names, generate, str(folder))


def load_tls(profile: Profile, profile_path: Path, now: datetime.datetime, *, generate: bool = True) -> TlsMaterial:
    """The certificate and key this build serves (see the module docstring)."""
    if profile.tls.mode == "files":
        return _operator_files(profile, profile_path, now)
    return _sidecar(profile, profile_path, now, generate)


# What nginx serves in an output folder: the ACME client's live pair when it has one, else the build's.
SERVED_CERTIFICATES = ("acme/live/fullchain.pem", "certs/fullchain.pem")


def served_certificate_warning(out_dir: Path, now: datetime.datetime) -> str | None:
    """The expiry warning of the certificate an output folder serves, or None (also when it has none)."""
    for relative in SERVED_CERTIFICATES:
        path = out_dir / relative
        try:
            text = _read(path)
        except FileNotFoundError:
            continue
        except (OSError, ValueError, UnicodeDecodeError):
            return f"{path}: unreadable; nginx will not start"
        return expiry_warning(text, now, str(path))
    return None


def source_certificate_warning(profile: Profile, profile_path: Path, now: datetime.datetime) -> str | None:
    """The expiry warning of the certificate the profile's builds copy (tls.certificate, or the kept self-signed one)."""
    if profile.tls.mode == "files" and profile.tls.certificate is not None:
        path = profile_path.parent / profile.tls.certificate
    else:
        path = tls_sidecar_dir(profile_path) / TLS_CHAIN
    try:
        return expiry_warning(_read(path), now, str(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"{path}: unreadable ({exc})"
