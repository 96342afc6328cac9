"""YAML with positions: plain Python data plus the line of every key and item.

Parses with PyYAML's composer (C-accelerated when available), never greps, and
types plain scalars the way Compose does (YAML 1.2 core schema, see
Yaml12Resolver): `22:22` stays a string; `yes`/`on` stay strings that the rules
read as true, as Compose's boolean fields do.

Beyond plain data it keeps what a linter needs and a plain load throws away:
the line of every mapping key and sequence item, keys given twice in one
mapping (Compose refuses those; PyYAML silently keeps the last), Compose's
`!reset` / `!override` merge tags, and comments (for disable directives).

Hostile documents are refused with a YamlError (exit 2), never expanded without
bound: aliases may expand to ALIAS_EXPANSION_RATIO times the document's nodes,
an alias inside the node it names is refused, nesting stops at MAX_DEPTH.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import BaseResolver

try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - pure-Python fallback
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


Path = tuple[str | int, ...]


class Yaml12Resolver(BaseResolver):
    """Plain scalars typed as Docker Compose (Go yaml.v3, YAML 1.2 core schema) types them.

    PyYAML's default YAML 1.1 rules read an unquoted `22:22` port as the number
    1342 and `on` as true; Compose reads the string "22:22" and the string "on"
    (which its boolean fields then accept, like "yes"). Rules see what Compose sees.
    """


Yaml12Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Yaml12Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Yaml12Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"),
)
Yaml12Resolver.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
Yaml12Resolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _Loader(_Parser, SafeConstructor, Yaml12Resolver):
    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        SafeConstructor.__init__(self)
        Yaml12Resolver.__init__(self)


class _Constructor(SafeConstructor):
    """Builds Python values from nodes; ints in Go's spellings (0o17, 0x1f) included."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        return int(text, 0) if text.lower().startswith(("0o", "0x", "-0x", "+0x")) else int(text, 10)


# The stubs type add_constructor for loader classes; a constructor-only class is what it registers on here.
_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)  # type: ignore[type-var]

RESET_TAG = "!reset"
OVERRIDE_TAG = "!override"


class YamlError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class Reset:
    """A value tagged `!reset`: an override file removes the attribute."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Reset()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reset)

    def __hash__(self) -> int:
        return hash(Reset)


@dataclass(frozen=True)
class Override:
    """A value tagged `!override`: replaces the attribute instead of merging into it."""

    value: Any


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one mapping: Compose rejects the file, PyYAML keeps the last value."""

    path: Path
    line: int
    first_line: int


@dataclass
class Located:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)

    def line(self, path: Path) -> int | None:
        """Line of `path`, or of its closest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


# Bounds on what a document may expand to (a "billion laughs" file is a few hundred bytes
# whose aliases expand to 10^9 nodes). Aliases may expand to ALIAS_EXPANSION_RATIO times the
# nodes the document really has, and always to ALIAS_EXPANSION_FLOOR: far beyond what a
# compose file's `x-` anchors need (Compose's YAML library refuses "excessive aliasing" too).
ALIAS_EXPANSION_RATIO = 10
ALIAS_EXPANSION_FLOOR = 100_000
# Deeper than any compose file; keeps every recursive walk of the data far from Python's limit.
MAX_DEPTH = 200


def load(text: str) -> Located:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(f"{exc.problem or exc}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), None) from None
    except RecursionError:
        raise YamlError(f"nested more than {MAX_DEPTH} levels deep", None) from None
    finally:
        loader.dispose()
    located = Located(None)
    if node is None:
        return located
    try:
        located.data = _Converter(located, node).convert(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(f"{exc.problem or exc}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), None) from None
    return located


def _distinct_nodes(root: yaml.Node) -> int:
    """How many nodes the document holds, each alias target once (iterative: the graph may be cyclic)."""
    seen = {id(root)}
    pending = [root]
    while pending:
        node = pending.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                children += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        for child in children:
            if id(child) not in seen:
                seen.add(id(child))
                pending.append(child)
    return len(seen)


STR_TAG = "tag:yaml.org,2002:str"


class _Converter:
    """Node graph -> plain data with lines, within the bounds above.

    An alias is the same node object met again: the budget counts every node
    converted (so every alias expansion), and a node met again while it is still
    being converted is a recursive alias, refused instead of recursing forever.
    """

    def __init__(self, located: Located, root: yaml.Node) -> None:
        self.located = located
        self.constructor = _Constructor()
        self.budget = max(ALIAS_EXPANSION_FLOOR, ALIAS_EXPANSION_RATIO * _distinct_nodes(root))
        self.converted = 0
        self.active: set[int] = set()

    def _enter(self, node: yaml.Node, depth: int) -> None:
        line = node.start_mark.line + 1
        self.converted += 1
        if self.converted > self.budget:
            raise YamlError(
                f"aliases expand to more than {self.budget} nodes (a 'billion laughs' document?); "
                "Compose refuses excessive aliasing too: write the values out or use fewer nested aliases",
                line,
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep", line)
        if id(node) in self.active:
            raise YamlError("an alias refers to a node that contains it (recursive alias): it would expand forever", line)

    def _scalar(self, node: yaml.Node) -> Any:
        # Most scalars of a compose file are strings: skip the constructor's dispatch for them (a third of a parse).
        if node.tag == STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value
        return self.constructor.construct_object(node, deep=True)

    def merge_pairs(self, node: yaml.MappingNode, depth: int) -> list[tuple[yaml.Node, yaml.Node]]:
        """Key/value pairs with YAML merge keys (`<<: *anchor`) expanded, own keys winning."""
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for source in sources:
                    if isinstance(source, yaml.MappingNode):
                        self._enter(source, depth + 1)
                        self.active.add(id(source))
                        try:
                            merged.extend(self.merge_pairs(source, depth + 1))
                        finally:
                            self.active.discard(id(source))
            else:
                pairs.append((key, value))
        own = {key.value for key, _ in pairs if isinstance(key, yaml.ScalarNode)}
        seen: set[Any] = set()
        unique_merged = []
        # Earlier sources of a merge list win over later ones (YAML merge key spec).
        for key, value in merged:
            name = key.value if isinstance(key, yaml.ScalarNode) else id(key)
            if name in own or name in seen:
                continue
            seen.add(name)
            unique_merged.append((key, value))
        return unique_merged + pairs

    def convert(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self._enter(node, depth)
        lines = self.located.lines
        lines.setdefault(path, node.start_mark.line + 1)
        if node.tag == RESET_TAG:
            return Reset()
        if node.tag == OVERRIDE_TAG:
            return Override(self.convert(_retag(node), path, depth + 1))
        if isinstance(node, yaml.MappingNode):
            self.active.add(id(node))
            try:
                return self._mapping(node, path, depth)
            finally:
                self.active.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.active.add(id(node))
            try:
                return [self.convert(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        lines = self.located.lines
        result: dict[Any, Any] = {}
        first_lines: dict[Any, int] = {}
        for key_node, value_node in self.merge_pairs(node, depth):
            key = self._scalar(key_node)
            if isinstance(key, (list, dict)):
                key = str(key)
            key_line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in first_lines and key_line != first_lines[key]:
                self.located.duplicates.append(Duplicate(child, key_line, first_lines[key]))
            first_lines[key] = key_line
            # A repeated key replaces the earlier value; drop the earlier value's positions.
            for stale in [p for p in lines if p[: len(child)] == child] if key in result else []:
                del lines[stale]
            lines[child] = key_line
            result[key] = self.convert(value_node, child, depth + 1)
            lines[child] = key_line
        return result


def _retag(node: yaml.Node) -> yaml.Node:
    """The same node with the tag its style implies, once a Compose tag is peeled off."""
    if isinstance(node, yaml.MappingNode):
        return yaml.MappingNode("tag:yaml.org,2002:map", node.value, node.start_mark, node.end_mark, node.flow_style)
    if isinstance(node, yaml.SequenceNode):
        return yaml.SequenceNode("tag:yaml.org,2002:seq", node.value, node.start_mark, node.end_mark, node.flow_style)
    assert isinstance(node, yaml.ScalarNode)
    tag = Yaml12Resolver().resolve(yaml.ScalarNode, node.value, (True, False)) if node.style is None else STR_TAG  # type: ignore[no-untyped-call]
    return yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)


@dataclass(frozen=True)
class Comment:
    line: int
    text: str  # without the leading '#'
    own_line: bool  # nothing but whitespace before it on its line


def comments(text: str, marker: str) -> list[Comment]:
    """Comments whose text contains `marker`, found with the YAML scanner.

    A `#` is a comment only outside scalars: `"# omnigen: ..."` inside a quoted
    string or a block scalar is data and must never act as a directive.
    """
    if marker not in text:
        return []
    spans: list[tuple[int, int]] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken):
                spans.append((token.start_mark.index, token.end_mark.index))
    except yaml.YAMLError:
        return []
    starts = [start for start, _ in spans]
    found: list[Comment] = []
    offset = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if marker in line:
            for match in re.finditer("#", line):
                column = match.start()
                if column and not line[column - 1].isspace():
                    continue
                index = offset + column
                inside = bisect.bisect_right(starts, index) - 1
                if inside >= 0 and spans[inside][0] <= index < spans[inside][1]:
                    continue
                body = line[column + 1 :]
                if marker in body:
                    found.append(Comment(number, body.strip(), not line[:column].strip()))
                break
        offset += len(line) + 1
    return found
