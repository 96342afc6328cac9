"""Masking secrets in text shown to people (diffs, CI logs).

A secret can appear in an output in several spellings: raw, percent-encoded
inside a URL, escaped for .env or YAML. The Redactor knows every spelling of
every secret it is given and replaces each with a mask; lines of secret files
that assign a secret key are masked by key as well, so a value nobody told us
about (an old password still in a hand-edited .env) is hidden too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from omnigen.formats import dotenv

MASK = "********"


def spellings(value: str) -> set[str]:
    """Every way `value` can be written into an omnigen output."""
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        dotenv.encode_value(value)[1:-1] if "\x00" not in value else value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.replace(";", "\\;"),  # manager.conf/ari.conf (asteriskconf.conf_secret)
    }
    forms |= {form.replace("$", "$$") for form in list(forms)}
    # A value with a line break shows up in a diff one line at a time.
    forms |= {piece for piece in value.splitlines() if piece.strip()}
    return {form for form in forms if form}


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets in text. Build it with every secret value and the names of secret keys."""

    pattern: re.Pattern[str] | None
    key_line: re.Pattern[str] | None

    @classmethod
    def create(cls, values: Iterable[str], secret_keys: Iterable[str]) -> Redactor:
        forms: set[str] = set()
        for value in values:
            forms |= spellings(value)
        # Longest first, so a secret's URL form is masked whole, not around a shorter form inside it.
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        pattern = re.compile("|".join(re.escape(form) for form in ordered)) if ordered else None
        keys = sorted(set(secret_keys))
        key_line = (
            re.compile(rf"^(?P<head>\s*(?:export\s+)?(?:{'|'.join(re.escape(key) for key in keys)})\s*=).*?(?P<end>\r?\n?)$")
            if keys
            else None
        )
        return cls(pattern, key_line)

    def text(self, text: str) -> str:
        return self.pattern.sub(MASK, text) if self.pattern is not None else text

    def line(self, line: str, *, secret_file: bool) -> str:
        """One line of output; in a secret file a `KEY=` line of a secret key loses its whole value."""
        if secret_file and self.key_line is not None:
            match = self.key_line.match(line)
            if match:
                return f'{match.group("head")}"{MASK}"{match.group("end")}'
        return self.text(line)


def env_values(text: str, keys: Iterable[str]) -> list[str]:
    """The values a .env text assigns to `keys` (for masking what is on disk now)."""
    wanted = set(keys)
    try:
        entries = dotenv.parse(text)
    except dotenv.DotenvError:
        return []
    return [entry.value for entry in entries if entry.key in wanted] + [entry.raw for entry in entries if entry.key in wanted]


# --------------------------------------------------------------------------- values in reports

HIDDEN = "***"

# Names that say "this is a credential", however spelt (DB_PWD, APIKEY, SMTP_AUTH, SENTRY_DSN, ...).
# Only a guard on top of the allow-list below: a name that does not match proves nothing.
_SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|AUTH|CRED|DSN|SALT|SIGN|PRIVATE|CERT|COOKIE|SESSION", re.IGNORECASE)
# Names whose values describe where or how a service runs, never who may use it.
_PLAIN_NAME = re.compile(
    r"(?:^|_)(?:TZ|LANG|LC_[A-Z]+|DEBUG|LOG_?LEVEL|LOGLEVEL|PORT|PORTS|HOST|HOSTS|HOSTNAME|SERVER|ADDRESS|IP|DB|NAME|"
    r"ENV|ENVIRONMENT|MODE|TIMEOUT|WORKERS|CONCURRENCY|SETTINGS_MODULE|REGION|ENABLED|MIN|MAX)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^[+-]?\d{1,6}(?:\.\d{1,6})?$")
_BOOLEAN = {"true", "false", "yes", "no", "on", "off"}
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.?(?::\d{1,5})?$", re.IGNORECASE)
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<userinfo>[^@/?#]*)@)?(?P<host>[^/?#]*)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)


def looks_like_credential_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _address(text: str) -> bool:
    import ipaddress

    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not port or port.isdigit()


def _harmless_shape(value: str) -> bool:
    """Values no credential looks like: numbers, booleans, host names and addresses."""
    return value.strip() == "" or bool(_NUMBER.match(value)) or value.lower() in _BOOLEAN or bool(_HOSTNAME.match(value)) or _address(value)


def _url_without_credentials(match: re.Match[str], keep_rest: bool) -> str:
    userinfo = f"{HIDDEN}@" if match.group("userinfo") is not None else ""
    rest = match.group("rest") if keep_rest else (f"/{HIDDEN}" if match.group("rest") else "")
    return f"{match.group('scheme')}://{userinfo}{match.group('host')}{rest}"


def shown_value(key: str, value: str, *, plain_key: bool = False) -> str:
    """How a report shows an environment value it did not write: `'value'` only when proven harmless.

    An allow-list, not a list of secret-looking names: the value is shown when its
    name says where or how a service runs (`*_HOST`, `*_PORT`, `TZ`; or `plain_key`,
    a name the plan itself knows to be no secret) or when the value has a shape no
    credential has (a number, a boolean, a host name or address). Whatever the name,
    a URL never shows its user and password; a URL under an unknown name shows only
    its scheme and host. A name that looks like a credential hides everything.
    """
    if _SECRET_NAME.search(key) and not plain_key:
        return HIDDEN
    url = _URL.match(value)
    known = plain_key or bool(_PLAIN_NAME.search(key))
    if url is not None:
        return repr(_url_without_credentials(url, keep_rest=known))
    if known or _harmless_shape(value):
        return repr(value)
    return HIDDEN
