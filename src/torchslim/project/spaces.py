"""A Hugging Face Space's README.md front matter, and a ``streamlit run`` line in the README.

A Space says how it runs in the YAML block at the top of its README.md::

    ---
    sdk: gradio            # gradio | streamlit | docker | static
    app_file: app.py       # the script the Space runs (default app.py)
    app_port: 7860         # docker Spaces: the port the container listens on
    python_version: "3.10"
    sdk_version: 4.44.1    # the gradio / streamlit release the Space platform installs
    ---

Only flat ``key: value`` lines are read (the keys above are never nested), so no YAML
library is needed. Every value keeps its ``README.md:N``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from torchslim.confined import escape_problem
from torchslim.project.dockerfile_facts import Found

README = "README.md"
SDKS = ("gradio", "streamlit", "docker")
MAX_README = 256 << 10  # front matter and a run line are near the top
_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")
_STREAMLIT_RUN = re.compile(r"\bstreamlit\s+run\s+([\w./-]+\.py)\b")


@dataclass(frozen=True)
class Space:
    sdk: Found[str] | None = None
    app_file: Found[str] | None = None
    app_port: Found[int] | None = None
    python: Found[str] | None = None  # "3.10" from python_version "3.10.13"
    sdk_version: Found[str] | None = None
    notes: tuple[str, ...] = ()


def _read_readme(root: Path) -> list[str]:
    path = root / README
    if not path.is_file():
        return []
    with path.open("rb") as f:
        return f.read(MAX_README).decode("utf-8", errors="replace").splitlines()


def _scalar(raw: str) -> str:
    """``"3.10"  # comment`` → ``3.10``."""
    if raw[:1] in ("'", '"'):
        end = raw.find(raw[0], 1)
        return raw[1:end] if end > 0 else raw[1:]
    return raw.split(" #")[0].strip()


def front_matter(root: Path) -> dict[str, Found[str]]:
    """The top-level ``key: value`` lines of README.md's leading ``---`` block."""
    lines = _read_readme(root)
    if not lines or lines[0].strip() != "---":
        return {}
    found: dict[str, Found[str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() in ("---", "..."):
            return found
        if (m := _KEY.match(line)) is not None and m.group(2):
            found.setdefault(m.group(1), Found(_scalar(m.group(2)), f"{README}:{number}"))
    return {}  # never closed: not front matter


def read_space(root: Path) -> Space | None:
    """The Space's settings, or None when README.md has no ``sdk`` in its front matter."""
    keys = front_matter(root)
    sdk = keys.get("sdk")
    if sdk is None:
        return None
    app_file, notes = keys.get("app_file"), []
    if app_file is not None and (why := escape_problem(root, "app_file", app_file.value)):
        notes.append(f"{app_file.where}: {why}; not used")
        app_file = None
    if app_file is None and sdk.value in ("gradio", "streamlit"):
        app_file = Found("app.py", f"{sdk.where} (sdk: {sdk.value}; app_file defaults to app.py)")
    port = keys.get("app_port")
    app_port = Found(int(port.value), port.where) if port and port.value.isdigit() else None
    python = keys.get("python_version")
    m = re.match(r"^(3\.\d+)", python.value) if python else None
    return Space(
        sdk=sdk,
        app_file=app_file,
        app_port=app_port,
        python=Found(m.group(1), python.where) if m and python else None,
        sdk_version=keys.get("sdk_version"),
        notes=tuple(notes),
    )


def sdk_not_required(space: Space | None, names: set[str]) -> str | None:
    """A note when the Space's SDK (which the Spaces platform installs itself, at
    ``sdk_version``) is not among the requirements: the image has only what they name."""
    if space is None or space.sdk is None or space.sdk.value not in ("gradio", "streamlit"):
        return None
    sdk = space.sdk.value
    if sdk in names:
        return None
    pin = f"=={space.sdk_version.value}" if space.sdk_version else ""
    return (
        f"{space.sdk.where}: sdk: {sdk}: the Spaces platform installs {sdk}{pin} itself, "
        f"but no requirement names it; add {sdk}{pin} to the requirements, or the image "
        f"has no {sdk}"
    )


def streamlit_run_line(root: Path) -> Found[str] | None:
    """The script of the first ``streamlit run x.py`` the README names, if it exists."""
    for number, line in enumerate(_read_readme(root), start=1):
        m = _STREAMLIT_RUN.search(line)
        inside = m is not None and escape_problem(root, "cmd", m.group(1)) is None
        if m is not None and inside and (root / m.group(1)).is_file():
            return Found(m.group(1), f"{README}:{number}")
    return None


__all__ = [
    "README",
    "SDKS",
    "Space",
    "front_matter",
    "read_space",
    "sdk_not_required",
    "streamlit_run_line",
]
