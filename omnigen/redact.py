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
