"""formats/keyfile.py: values written into rtpengine.conf."""

from __future__ import annotations

import pytest

from omnigen.formats.asteriskconf import parse_conf
from omnigen.formats.keyfile import KeyFileValueError, keyfile_value


@pytest.mark.parametrize("value", ["a;b", "a\nb", " a", "a ", "#a", "a\\n", "[a]", ""])
def test_values_that_could_add_keys_or_list_items_are_refused(value: str) -> None:
    with pytest.raises(KeyFileValueError):
        keyfile_value(value)


@pytest.mark.parametrize("value", ["public/10.0.0.2!203.0.113.1", "10.0.0.2:2223", "-1", "30"])
def test_safe_values_read_back_unchanged(value: str) -> None:
    conf = parse_conf(f"[rtpengine]\nkey = {keyfile_value(value)}\n", dialect="keyfile")
    section = conf.section("rtpengine")
    assert section is not None
    setting = section.get("key")
    assert setting is not None and setting.value == value
