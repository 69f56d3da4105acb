"""Write what ``init`` chose: ``torchslim.toml``, or a ``[tool.torchslim]`` table appended
to ``pyproject.toml`` (the user's text is kept byte for byte). Nothing existing is
replaced, the result is validated as the build would read it, and the write is atomic.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from torchslim import __version__
from torchslim.atomic import atomic_path
from torchslim.config import CONFIG_FILE, PYPROJECT, parse_config
from torchslim.errors import ConfigError, OutputExistsError
from torchslim.project.init import InitPlan

# The order keys are written in: what identifies the image, then how it runs.
KEY_ORDER = (
    "name", "version", "python", "torch", "variant", "requirements", "extras", "groups",
    "app", "files", "model", "include", "exclude", "cmd", "port", "health", "healthcheck", "user",
    "env", "writable", "init",
)  # fmt: skip


def _key(name: str) -> str:
    return tomli_w.dumps({name: 0}).split(" = ")[0]


def toml_value(value: Any) -> str:
    """One value as inline TOML (arrays and tables on one line, so a comment can follow)."""
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[4:].rstrip("\n")


def _comment(text: str) -> str:
    return " ".join(text.split())


def render_table(plan: InitPlan) -> str:
    """The chosen keys, one per line, each with its source as a comment."""
    values = plan.values
    sources = {c.key: c.source for c in plan.choices if c.written}
    keys = sorted(values, key=lambda k: KEY_ORDER.index(k) if k in KEY_ORDER else 99)
    lines = []
    for key in keys:
        lines.append(f"{_key(key)} = {toml_value(values[key])}  # {_comment(sources[key])}")
    return "\n".join(lines) + "\n"


def _validate(plan: InitPlan, file: Path) -> None:
    data = tomllib.loads(render_table(plan))
    try:
        parse_config(data, file=file, root=plan.root)
    except ConfigError as exc:  # a bug in init: say so rather than write a broken file
        raise ConfigError(f"init chose a config the build would refuse: {exc}") from None


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, mode)


def write_config(plan: InitPlan, *, pyproject: bool = False) -> Path:
    """Write ``plan`` to ``torchslim.toml`` (or pyproject.toml's ``[tool.torchslim]``)."""
    root = plan.root
    own, py = root / CONFIG_FILE, root / PYPROJECT
    if own.exists():
        raise OutputExistsError(f"{own}: already exists; init does not overwrite a config")
    py_data: dict[str, Any] = {}
    if py.is_file():
        try:
            py_data = tomllib.loads(py.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{py}: not valid TOML: {exc}; fix it before init") from None
    if "torchslim" in py_data.get("tool", {}):
        raise OutputExistsError(
            f"{py}: already has [tool.torchslim]; init does not overwrite a config"
        )
    target = py if pyproject else own
    _validate(plan, target)
    head = (
        f"# Written by torchslim init {__version__}; each comment says where a value came from.\n"
    )
    if not pyproject:
        _atomic_write(own, head + render_table(plan))
        return own
    text = py.read_text(encoding="utf-8") if py.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    text += ("\n" if text else "") + "[tool.torchslim]\n" + head + render_table(plan)
    try:
        appended = tomllib.loads(text).get("tool", {}).get("torchslim")
    except tomllib.TOMLDecodeError:
        appended = None
    if appended != tomllib.loads(render_table(plan)):
        raise ConfigError(
            f"{py}: a [tool.torchslim] table cannot be appended to this file's layout; "
            "run init without --pyproject to write torchslim.toml"
        )
    mode = py.stat().st_mode & 0o777 if py.is_file() else 0o644
    _atomic_write(py, text, mode)
    return py


__all__ = ["render_table", "toml_value", "write_config"]
