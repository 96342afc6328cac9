"""Stage 3: print the plan through the Jinja templates.

Templates hold no logic beyond loops and conditionals over plan values. Every
value passes through a filter that encodes it for its destination: `q` for
YAML, `dotenv` for .env, `conf` for Asterisk configs (which refuses values that
could add a line, section or directive).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat
from pathlib import Path

import jinja2
import jinja2.bccache

from omnigen.formats.asteriskconf import conf_secret, conf_value
from omnigen.formats.dotenv import encode_value
from omnigen.formats.kamailiocfg import cfg_value
from omnigen.formats.keyfile import keyfile_value
from omnigen.formats.shellenv import encode_value as shell_env_value
from omnigen.plan.plan import Plan


def templates_dir() -> Path:
    """Templates ship inside the wheel (omnigen/templates) and live at the repo root in a checkout."""
    packaged = Path(__file__).with_name("templates")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


def yaml_quote(value: object) -> str:
    """A YAML double-quoted scalar that Compose reads back as exactly `value`.

    JSON string syntax is a subset of YAML's double-quoted style, except that
    YAML has no surrogate pairs (Compose refuses `\\ud83d\\ude00`): characters
    beyond U+FFFF are written as YAML's `\\UXXXXXXXX`. `$` is doubled because
    Compose interpolates every string in the file.
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"refusing to quote {value!r}: print booleans and nulls explicitly")
    text = str(value)
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise ValueError(f"refusing to quote {text!r}: a lone surrogate is not a character")
    quoted = json.dumps(text, ensure_ascii=True)
    if "\\ud" in quoted:
        quoted = _SURROGATE_PAIR.sub(_astral_escape, quoted)
    return quoted.replace("$", "$$")


# An escaped backslash, or a JSON surrogate pair; the first alternative keeps `\\\\ud83d` (a literal
# backslash followed by text) from being read as an escape.
_SURROGATE_PAIR = re.compile(r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _astral_escape(match: re.Match[str]) -> str:
    if match.group(1) is None:
        return match.group(0)
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


# What a YAML literal block cannot hold as written: C0 controls but tab and newline, DEL, C1 (NEL), the Unicode
# line and paragraph separators (line breaks to YAML 1.1 readers), the BOM, lone surrogates.
_NOT_IN_BLOCK = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")


def yaml_literal_block(value: object, indent: int) -> str:
    """A YAML literal block scalar (`|`) that Compose reads back as exactly `value`: a script of several lines
    stays readable in the compose file. Its lines are indented `indent` spaces; the chomping indicator keeps the
    trailing newlines as they are; `$` is doubled as `q` doubles it. Refuses what a block cannot carry."""
    text = str(value)
    if _NOT_IN_BLOCK.search(text):
        raise ValueError(f"refusing to print {text!r} as a YAML block: it holds a control character")
    if text[:1] in (" ", "\n", "\t", ""):
        raise ValueError(f"refusing to print {text!r} as a YAML block: its first line must start with a visible character")
    body = text.rstrip("\n")
    chomping = "-" if body == text else ("" if text == body + "\n" else "+")
    lines = body.replace("$", "$$").split("\n") + [""] * (len(text) - len(body) - 1)
    return "|" + chomping + "".join("\n" + (" " * indent + line if line else "") for line in lines)


# `${NAME}` / `${NAME:-default}` / `${NAME:?}`: the only `$` a deliberately interpolated value may hold.
_INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::[-?][A-Za-z0-9_.-]*)?\}")


def yaml_quote_interpolated(value: object) -> str:
    """`q` for a value that must be interpolated (a Swarm object name carrying deploy-stack.sh's
    checksum): its `${...}` stay as they are; any other `$` is doubled like `q` does."""
    text = str(value)
    parts = _INTERPOLATION.split(text)
    references = _INTERPOLATION.findall(text)
    quoted = [yaml_quote(part)[1:-1] for part in parts]
    body = "".join(piece + (references[index] if index < len(references) else "") for index, piece in enumerate(quoted))
    return f'"{body}"'


_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_.,:/=@%+-]+$")


def shell_word(value: object) -> str:
    """A POSIX shell word: bare when it holds only safe characters, else single-quoted."""
    text = str(value)
    if "\x00" in text or "\n" in text:
        raise ValueError(f"refusing to put {text!r} in a shell script")
    return text if _SHELL_SAFE.match(text) else "'" + text.replace("'", "'\\''") + "'"


class PrivateBytecodeCache(jinja2.BytecodeCache):
    """Jinja's compiled templates on disk, in a folder only the current user can write.

    A cache file is code this process runs, so one planted by another user would
    run with our rights (root's, often) over the secrets. As Jinja's own default
    cache folder does, the folder must be owned by us and mode 0700; beyond that,
    it is opened once (no symlink) and every file is opened relative to it, so
    swapping a parent folder afterwards changes nothing, and a cache file is used
    only if we own it and nobody else can write it.
    """

    def __init__(self, directory_fd: int) -> None:
        self.directory_fd = directory_fd

    @classmethod
    def open(cls, directory: str) -> PrivateBytecodeCache | None:
        """The cache in `directory` (created 0700), or None when that folder is not safely ours."""
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            os.makedirs(os.path.dirname(directory), mode=0o700, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
            fd = os.open(directory, flags)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or not stat.S_ISDIR(info.st_mode):
                os.close(fd)
                return None
            if stat.S_IMODE(info.st_mode) != 0o700:
                # Ours but loosened: make it private again; files others planted meanwhile fail the owner check.
                os.fchmod(fd, 0o700)
        except OSError:
            os.close(fd)
            return None
        return cls(fd)

    @staticmethod
    def _name(bucket: jinja2.bccache.Bucket) -> str:
        return f"__jinja2_{bucket.key}.cache"

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            fd = os.open(self._name(bucket), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=self.directory_fd)
        except OSError:
            return
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
                return
            bucket.load_bytecode(handle)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        name = self._name(bucket)
        temporary = f".{name}.{os.urandom(6).hex()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            with os.fdopen(os.open(temporary, flags, 0o600, dir_fd=self.directory_fd), "wb") as handle:
                bucket.write_bytecode(handle)
            os.replace(temporary, name, src_dir_fd=self.directory_fd, dst_dir_fd=self.directory_fd)
        except OSError:  # a cache that cannot be written only costs time
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.directory_fd)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates survive between runs (Jinja checks each source's checksum,
    so an edited template is recompiled). Compiling costs more than a whole build.
    No cache at all when the folder is not safely ours (PrivateBytecodeCache)."""
    from omnigen import __version__

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return PrivateBytecodeCache.open(os.path.join(base, "omnigen", f"jinja-{__version__}"))


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=False,
        lstrip_blocks=False,
        auto_reload=False,
    )
    env.filters["q"] = yaml_quote
    env.filters["dotenv"] = encode_value
    env.filters["conf"] = conf_value
    env.filters["confsecret"] = conf_secret
    env.filters["kam"] = cfg_value
    env.filters["keyfile"] = keyfile_value
    env.filters["qi"] = yaml_quote_interpolated
    env.filters["block"] = yaml_literal_block
    env.filters["shenv"] = shell_env_value
    env.filters["sh"] = shell_word
    return env


def render(plan: Plan) -> dict[str, str]:
    """Render every output of the plan: relative path -> text, in plan order."""
    if plan.secrets_withheld:
        raise RuntimeError("render was given a topology (plan.make.make_topology): it holds no secrets to print")
    env = environment()
    files = {dest: env.get_template(template).render(plan=plan) for template, dest in plan.outputs}
    for dest, variables in plan.secret_env.items():  # secrets/<service>.env, the services' env_file
        files[dest] = env.get_template("secrets.env.j2").render(plan=plan, variables=variables)
    for folder, part in plan.bundles:  # multi-host: each host's bundle, from a plan of its own
        files.update({f"{folder}/{dest}": text for dest, text in render(part).items()})
    return files
