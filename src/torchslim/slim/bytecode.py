"""``bytecode = "imported"``: a .pyc only for the modules the served proof imported.

Every ``.py`` under site-packages gets a hash-based ``.pyc`` (``slim.pyc``); most are
never imported by an inference service (bench/fleet.py: 90 MB of a 688 MB image). With
``bytecode = "imported"`` the build keeps the ``.pyc`` of each module the service
imported while it was served (CPython's import-time report, ``proof.serve``) and removes
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


def _sources(name: str, site: Path) -> tuple[Path, Path]:
    parts = name.split(".")
    return site.joinpath(*parts[:-1], parts[-1] + ".py"), site.joinpath(*parts, "__init__.py")


def site_modules(names: Iterable[str], trees: Iterable[Path], site_packages: str) -> list[str]:
    """The names (sorted) that are modules of site-packages in any of ``trees`` (an image's
    layer trees): the app's own and the standard library's are not."""
    sites = [tree / site_packages.strip("/") for tree in trees]
    found = set()
    for name in names:
        for site in sites:
            if any(p.is_file() for p in _sources(name, site)):
                found.add(name)
                break
    return sorted(found)


def _module_of(pyc: str, cache_tag: str) -> str | None:
    """``a/b/__pycache__/c.cpython-311.pyc`` -> ``a.b.c`` (``__init__`` -> ``a.b``)."""
    parent, _, base = pyc.rpartition("/__pycache__/")
    suffix = f".{cache_tag}.pyc"
    if not base.endswith(suffix):
        return None
    stem = base[: -len(suffix)]
    parts = [p for p in parent.split("/") if p] + ([] if stem == "__init__" else [stem])
    return ".".join(parts)


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
            module = _module_of(rel, tag)
            if module is None or module in wanted:
                continue
            path = Path(dirpath) / name
            size = path.lstat().st_size
            path.unlink()
            ledger.add(STEP_ID, f"/{site_packages.strip('/')}/{rel}", size)
            removed += size
    return removed
