"""pip requirement files: which one is prod, which are dev, and their lines as items.

Prod is the first of :data:`PROD_FILES` that exists (an explicitly prod-named file wins
over ``requirements.txt``, which in many projects holds everything). A file whose
name carries a dev word (``requirements-dev.txt``, ``dev-requirements.txt``,
``requirements/test.txt``) is dev. Any other ``requirements*.txt``
(``requirements-gpu.txt``) is left alone and named in a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from torchslim.confined import build_context
from torchslim.deps.requirements import Requirements, read_requirements
from torchslim.project.items import RequirementItem
from torchslim.project.pyproject import DEV_GROUPS

PROD_FILES = (
    "requirements-prod.txt",
    "requirements_prod.txt",
    "requirements.prod.txt",
    "requirements-production.txt",
    "requirements/prod.txt",
    "requirements/production.txt",
    "requirements.txt",
    "requirements/base.txt",
    "requirements/main.txt",
    "requirements.in",
)
DEV_WORDS = DEV_GROUPS | {"ci", "bench"}


@dataclass(frozen=True)
class RequirementFiles:
    prod: Path | None
    dev: tuple[Path, ...]
    unused: tuple[Path, ...]


def _candidates(root: Path) -> list[Path]:
    found = {*root.glob("requirements*.txt"), *root.glob("*requirements*.txt")}
    found |= {*root.glob("requirements/*.txt"), *root.glob("requirements*.in")}
    return sorted(p for p in found if p.is_file())


def is_dev_file(rel: str) -> bool:
    words = re.split(r"[-_./]", rel.lower())
    return any(w in DEV_WORDS for w in words)


def discover(root: Path) -> RequirementFiles:
    prod = next((root / n for n in PROD_FILES if (root / n).is_file()), None)
    dev, unused = [], []
    for path in _candidates(root):
        rel = path.relative_to(root).as_posix()
        if path == prod:
            continue
        if is_dev_file(rel):
            dev.append(path)
        elif not (path.suffix == ".in" and path.with_suffix(".txt").is_file()):
            unused.append(path)  # a pip-tools .in next to its .txt is the same requirement
    return RequirementFiles(prod, tuple(dev), tuple(unused))


def file_items(root: Path, path: Path) -> tuple[list[RequirementItem], Requirements]:
    """The requirement lines of ``path`` (and its ``-r`` includes), each with ``file:line``;
    every path they name must stay in the build context of ``root``."""
    parsed = read_requirements(path, build_context(root))
    items = [RequirementItem(r.text, _relative(root, r.origin)) for r in parsed.requirements]
    return items, parsed


def _relative(root: Path, origin: str) -> str:
    file, _, line = origin.rpartition(":")
    try:
        rel = Path(file).relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = file
    return f"{rel}:{line}"


__all__ = ["DEV_WORDS", "PROD_FILES", "RequirementFiles", "discover", "file_items", "is_dev_file"]
