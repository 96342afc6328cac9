"""Stage 3: print the plan through the Jinja templates.

Templates hold no logic beyond loops and conditionals over plan values. Every
value passes through a filter that encodes it for its destination: `q` for
YAML, `dotenv` for .env, `conf` for Asterisk configs (which refuses values that
could add a line, section or directive).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import jinja2

from omnigen.formats.asteriskconf import conf_value
from omnigen.formats.dotenv import encode_value
from omnigen.plan import Plan


def templates_dir() -> Path:
    """Templates ship inside the wheel (omnigen/templates) and live at the repo root in a checkout."""
    packaged = Path(__file__).with_name("templates")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


def yaml_quote(value: object) -> str:
    """A YAML double-quoted scalar that Compose reads back as exactly `value`.

    JSON string syntax is a subset of YAML's double-quoted style; `$` is doubled
    because Compose interpolates every string in the file.
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"refusing to quote {value!r}: print booleans and nulls explicitly")
    return json.dumps(str(value), ensure_ascii=True).replace("$", "$$")


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates survive between runs (Jinja checks each source's checksum,
    so an edited template is recompiled). Compiling costs more than a whole build."""
    from omnigen import __version__

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "omnigen", f"jinja-{__version__}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not os.access(directory, os.W_OK):
            return None
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(directory)


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
    return env


def render(plan: Plan) -> dict[str, str]:
    """Render every output of the plan: relative path -> text, in plan order."""
    env = environment()
    return {dest: env.get_template(template).render(plan=plan) for template, dest in plan.outputs}
