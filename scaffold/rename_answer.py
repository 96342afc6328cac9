"""Rename an answer in a Copier answers file: the helper `_migrations` call when a
template release renames a question (docs/releases.md, copier.yml).

Copier runs migrations in the project being updated, before the new template
version asks its questions, so the old answer reaches the new question instead of
being dropped and asked again.

usage: python rename_answer.py OLD NEW [ANSWERS_FILE]   (default: .copier-answers.yml)
Only the standard library: it runs under whichever Python runs Copier.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def rename_answer(text: str, old: str, new: str) -> str:
    """The answers text with top-level key `old` renamed to `new`; unchanged when `old` is absent."""
    if re.search(rf"^{re.escape(new)}:", text, re.MULTILINE):
        if re.search(rf"^{re.escape(old)}:", text, re.MULTILINE):
            raise ValueError(f"both {old!r} and {new!r} are answered; remove one from the answers file")
        return text  # already migrated: running a migration twice is harmless
    return re.sub(rf"^{re.escape(old)}:", f"{new}:", text, count=1, flags=re.MULTILINE)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    old, new = argv[0], argv[1]
    path = Path(argv[2] if len(argv) == 3 else ".copier-answers.yml")
    try:
        path.write_text(rename_answer(path.read_text(encoding="utf-8"), old, new), encoding="utf-8")
    except (OSError, ValueError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
