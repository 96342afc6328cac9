"""nginx.conf read back as a tree of directives with line numbers, for the
edge rules (which upstream a location proxies to, on which port).

The tokenizer follows nginx's own: words separated by whitespace, `;` ends a
simple directive, `{ }` a block, `#` starts a comment, quotes group words.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


class NginxSyntaxError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Directive:
    name: str
    args: tuple[str, ...]
    line: int
    block: list[Directive] | None = None
    parent: Directive | None = field(default=None, repr=False, compare=False)

    def find(self, name: str) -> Iterator[Directive]:
        """Directives called `name` anywhere below this one."""
        for child in self.block or []:
            if child.name == name:
                yield child
            yield from child.find(name)

    def first(self, name: str) -> Directive | None:
        for child in self.block or []:
            if child.name == name:
                return child
        return None


def _tokens(text: str) -> Iterator[tuple[str, int, bool]]:
    """(token, line, quoted); `{`, `}` and `;` are their own tokens."""
    line = 1
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\n":
            line += 1
            index += 1
        elif char.isspace():
            index += 1
        elif char == "#":
            while index < length and text[index] != "\n":
                index += 1
        elif char in "{};":
            yield char, line, False
            index += 1
        elif char in "\"'":
            start_line = line
            index += 1
            word = []
            while index < length and text[index] != char:
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                if text[index] == "\n":
                    line += 1
                word.append(text[index])
                index += 1
            if index >= length:
                raise NginxSyntaxError("unterminated quoted string", start_line)
            index += 1
            yield "".join(word), start_line, True
        else:
            start = index
            while index < length and not text[index].isspace() and text[index] not in "{};\"'":
                index += 1
            yield text[start:index], line, False


def parse_nginx(text: str) -> Directive:
    """The whole file as the block of a root directive named `main`."""
    root = Directive("main", (), 1, [])
    stack = [root]
    words: list[str] = []
    first_line = 1
    for token, line, quoted in _tokens(text):
        if quoted or token not in "{};":
            if not words:
                first_line = line
            words.append(token)
        elif token == ";":
            if not words:
                raise NginxSyntaxError("unexpected ';'", line)
            parent = stack[-1]
            assert parent.block is not None
            parent.block.append(Directive(words[0], tuple(words[1:]), first_line, None, parent))
            words = []
        elif token == "{":
            if not words:
                raise NginxSyntaxError("unexpected '{'", line)
            parent = stack[-1]
            assert parent.block is not None
            block = Directive(words[0], tuple(words[1:]), first_line, [], parent)
            parent.block.append(block)
            stack.append(block)
            words = []
        else:
            if words or len(stack) == 1:
                raise NginxSyntaxError("unexpected '}'", line)
            stack.pop()
    if words or len(stack) != 1:
        raise NginxSyntaxError("unexpected end of file", text.count("\n") + 1)
    return root
