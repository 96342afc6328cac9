"""Which files `docker compose` reads in a folder, and which of them omnigen did not write.

Compose (compose-go cli/options.go, checked against the real binary in
tests/test_check.py) takes, with no -f and no COMPOSE_FILE, the first of
COMPOSE_FILE_NAMES that exists in the folder (any kind of file: a folder or FIFO
by that name is picked and then fails) and the first of OVERRIDE_FILE_NAMES. There
is no pairing by name: `compose.override.yaml` is merged into `docker-compose.yml`
too. A `compose.yaml` beside omnigen's `docker-compose.yml` therefore replaces it.

Only stdlib imports here: the fast path of `omnigen check` asks whether an output
folder holds compose files it did not write before it decides to compile.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Collection
from pathlib import Path

# In Compose's order of preference.
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILE_NAMES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml")


def default_compose_files(folder: str, exists: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(files Compose reads in `folder` with no -f, files it ignores because a preferred name exists)."""
    found = [posixpath.join(folder, name) for name in COMPOSE_FILE_NAMES if exists(posixpath.join(folder, name))]
    if not found:
        return [], []
    overrides = [posixpath.join(folder, name) for name in OVERRIDE_FILE_NAMES if exists(posixpath.join(folder, name))]
    return [found[0], *overrides[:1]], found[1:] + overrides[1:]


def compose_folders(written: Collection[str]) -> list[str]:
    """Folders (relative, "" for the top) where omnigen writes a compose file that `docker compose` runs."""
    return sorted({posixpath.dirname(path) for path in written if posixpath.basename(path) in COMPOSE_FILE_NAMES})


def unwritten_compose_files(out_dir: Path, written: Collection[str]) -> dict[str, list[str]]:
    """For each compose folder of the output: the compose and override files there that omnigen did not write."""
    found: dict[str, list[str]] = {}
    for folder in compose_folders(written):
        names = [
            name
            for name in COMPOSE_FILE_NAMES + OVERRIDE_FILE_NAMES
            if posixpath.join(folder, name) not in written and os.path.lexists(out_dir / folder / name)
        ]
        if names:
            found[folder] = names
    return found
