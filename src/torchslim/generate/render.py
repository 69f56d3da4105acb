"""A strict jinja2 environment for the templates, and quoting helpers they share."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import BaseLoader, Environment, StrictUndefined


def _q(value: Any) -> str:
    """Double-quoted scalar; JSON strings are valid YAML and Dockerfile JSON arrays."""
    return json.dumps(value)


def dq(value: str) -> str:
    """A Dockerfile ENV/LABEL value in double quotes: escape \\, " and $."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def environment() -> Environment:
    env = Environment(
        loader=BaseLoader(),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = _q
    env.filters["dq"] = dq
    env.filters["json"] = lambda v: json.dumps(v)
    return env


def render(template: str, **context: Any) -> str:
    return environment().from_string(template).render(**context)
