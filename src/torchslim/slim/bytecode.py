"""``bytecode = "imported"``: a .pyc only for the modules the served proof imported.

Every ``.py`` under site-packages gets a hash-based ``.pyc`` (``slim.pyc``); most are
never imported by an inference service (bench/fleet.py: 90 MB of a 688 MB image). With
``bytecode = "imported"`` the build keeps the ``.pyc`` of each module the service
loaded while it was served (the files it opened, ``proof.census``) and removes
the others: those modules still import, from source, compiled in memory on first import
(the image sets PYTHONDONTWRITEBYTECODE and its root is read only, so nothing is written).
The sources stay; nothing else changes.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path

from torchslim.slim.ledger import Ledger

STEP_ID = "unimported-bytecode"


def module_of_source(rel: str) -> str | None:
    """The module a file relative to site-packages is the source of: ``a/b.py`` -> ``a.b``,
    ``a/__init__.py`` -> ``a``; None for anything else."""
    if not rel.endswith(".py"):
        return None
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def module_of_pyc(rel: str, cache_tag: str) -> str | None:
    """``a/b/__pycache__/c.cpython-311.pyc`` -> ``a.b.c`` (``__init__`` -> ``a.b``)."""
    parent, sep, base = ("/" + rel).rpartition("/__pycache__/")
    if not sep:
        return None
    parent = parent.lstrip("/")
    suffix = f".{cache_tag}.pyc"
    if not base.endswith(suffix):
        return None
    stem = base[: -len(suffix)]
    return module_of_source(f"{parent}/{stem}.py" if parent else f"{stem}.py")


def source_of_pyc(path: str) -> str | None:
    """``a/__pycache__/b.cpython-311.pyc`` -> ``a/b.py``; None for any other path."""
    parent, _, name = path.rpartition("/")
    if parent.endswith("/__pycache__") and name.endswith(".pyc"):
        return parent.removesuffix("/__pycache__") + "/" + name.split(".")[0] + ".py"
    return None


def modules_opened(opened: Iterable[str], site_packages: str, python_version: str) -> list[str]:
    """The site-packages modules (sorted) whose source or bytecode is among ``opened``
    (image paths, ``proof.census``): the app's own and the standard library's are not."""
    site = "/" + site_packages.strip("/") + "/"
    tag = "cpython-" + python_version.replace(".", "")
    found = set()
    for path in opened:
        if not path.startswith(site):
            continue
        rel = path[len(site) :]
        module = module_of_pyc(rel, tag) if rel.endswith(".pyc") else module_of_source(rel)
        if module is not None:
            found.add(module)
    return sorted(found)


def drop_unimported(
    root: Path, site_packages: str, imported: Collection[str], python_version: str, ledger: Ledger
) -> int:
    """Remove the ``.pyc`` under ``root + site_packages`` of every module not in
    ``imported``; each goes in ``ledger`` under ``STEP_ID``. Returns the bytes removed."""
    site = root / site_packages.strip("/")
    tag = "cpython-" + python_version.replace(".", "")
    wanted = set(imported)
    removed = 0
    for dirpath, dirnames, filenames in os.walk(site):
        dirnames.sort()
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), site).replace(os.sep, "/")
            module = module_of_pyc(rel, tag)
            if module is None or module in wanted:
                continue
            path = Path(dirpath) / name
            size = path.lstat().st_size
            path.unlink()
            ledger.add(STEP_ID, f"/{site_packages.strip('/')}/{rel}", size)
            removed += size
    return removed
