"""formats/yamlpos.py: positions, Compose's YAML 1.2 typing, merge tags, duplicate keys, comments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnigen.formats import yamlpos


def test_lines_of_keys_and_items() -> None:
    located = yamlpos.load("services:\n  app:\n    ports:\n      - '80:80'\n      - target: 81\n    cap_add: [A, B]\n")
    assert located.lines[("services", "app")] == 2
    assert located.lines[("services", "app", "ports", 0)] == 4
    assert located.lines[("services", "app", "ports", 1)] == 5
    assert located.lines[("services", "app", "ports", 1, "target")] == 5
    assert located.lines[("services", "app", "cap_add", 1)] == 6
    assert located.line(("services", "app", "ports", 7)) == 3, "unknown paths fall back to the closest ancestor"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("22:22", "22:22"),  # YAML 1.1 would read 1342
        ("yes", "yes"),
        ("on", "on"),
        ("True", True),
        ("FALSE", False),
        ("0o17", 15),
        ("0x1F", 31),
        ("1e3", 1000.0),
        ("~", None),
        ("2024-01-01", "2024-01-01"),
        ("'true'", "true"),
    ],
)
def test_scalars_are_typed_as_compose_types_them(text: str, value: object) -> None:
    assert yamlpos.load(f"key: {text}\n").data == {"key": value}


def test_merge_keys_and_their_positions() -> None:
    text = "x-base: &base\n  privileged: true\n  image: a\nservices:\n  app:\n    <<: *base\n    image: b\n"
    located = yamlpos.load(text)
    assert located.data["services"]["app"] == {"privileged": True, "image": "b"}
    assert located.lines[("services", "app", "privileged")] == 2, "reported where the value is written"
    assert located.lines[("services", "app", "image")] == 7


def test_compose_merge_tags() -> None:
    located = yamlpos.load("a: !reset null\nb: !override [x, 1]\nc: !override\n  k: yes\n")
    assert located.data == {"a": yamlpos.Reset(), "b": yamlpos.Override(["x", 1]), "c": yamlpos.Override({"k": "yes"})}


def test_duplicate_keys_are_recorded_and_the_last_value_kept() -> None:
    located = yamlpos.load("app:\n  privileged: false\n  image: x\n  privileged: true\n")
    assert located.data == {"app": {"privileged": True, "image": "x"}}
    assert located.duplicates == [yamlpos.Duplicate(("app", "privileged"), 4, 2)]
    assert located.lines[("app", "privileged")] == 4


def test_invalid_yaml_has_a_line() -> None:
    with pytest.raises(yamlpos.YamlError) as error:
        yamlpos.load("a: 1\nb: [unclosed\n")
    assert error.value.line is not None


def test_comments_are_found_only_outside_scalars() -> None:
    text = (
        "a: 1  # omnigen: one\n"
        "# omnigen: two\n"
        'b: "text # omnigen: not a comment"\n'
        "c: |\n"
        "  # omnigen: block scalar content\n"
        "d: plain#omnigen:not-a-comment-either\n"
        "e: 'x' #omnigen: three\n"
    )
    found = [(comment.line, comment.text, comment.own_line) for comment in yamlpos.comments(text, "omnigen:")]
    assert found == [(1, "omnigen: one", False), (2, "omnigen: two", True), (7, "omnigen: three", False)]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_a_marker_inside_a_quoted_string_is_never_a_comment(inner: str) -> None:
    value = ("# omnigen: disable=OV101 " + inner).replace("\\", "\\\\").replace('"', '\\"')
    text = f'key: "{value}"\n'
    assert yamlpos.load(text).data["key"].startswith("# omnigen:")
    assert yamlpos.comments(text, "omnigen:") == []
