"""Writing rtpengine.conf values: a GLib key file (`[section]`, `key = value`).

List values (e.g. `interface`) separate their items with `;`, so a value may
not contain one; nor a newline, a backslash escape or surrounding spaces,
which GLib would change or which could add a key. Reading it back is
formats/asteriskconf.py's "keyfile" dialect.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029;\\#\[\]]|^\s|\s$")  # \x85/U+2028/U+2029: line ends to splitlines


class KeyFileValueError(ValueError):
    pass


def keyfile_value(value: object) -> str:
    """One key-file value or list item, refused rather than escaped when unsafe."""
    text = str(value)
    if not text or _UNSAFE.search(text):
        raise KeyFileValueError(f"value {text!r} cannot be written to a key file safely")
    return text
