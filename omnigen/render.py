"""Stage 3: print the plan through the Jinja templates.

Templates hold no logic beyond loops and conditionals over plan values. Every
value passes through a filter that encodes it for its destination: `q` for
YAML, `dotenv` for .env, `conf` for Asterisk configs (which refuses values that
could add a line, section or directive).
"""

from __future__ import annotations

import functools
import json
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


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
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
