"""``profile = "used"``: keep only the Python code the served proof saw the service import.

Opt-in, on top of ``inference``'s rules. Once the service has been served (``proof.serve``
records every module it imports while starting and answering the smoke requests), the
build takes out of site-packages:

- ``unused-distribution``: every distribution none of whose modules was imported, that
  ships no shared object (a library can be loaded without an import: ``dlopen``, a
  DT_NEEDED of a kept one) and no ``.pth`` file (run at every start);
- ``unimported-module``: in the distributions kept, the source and ``.pyc`` of each
  module that was never imported (``__main__.py`` stays: ``python -m`` runs it without
  an import the census sees).

The image is then served again, and only an image that answers is written. The risk is
plain: a code path the smoke requests did not reach may import a module that is gone,
and fail there. ``keep`` globs hold a distribution (any of its files matched) or a
module back.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchslim.slim.apply import KeepGlobs, prune_empty_dirs
from torchslim.slim.bytecode import module_of_source
from torchslim.slim.ledger import Ledger
from torchslim.slim.record import rewrite_records

PROFILE = "used"
# On a CUDA build the proof serves without a GPU, so torch's GPU paths never ran and the
# census cannot vouch for them: torch's own modules stay whole there (nothing that needs
# a GPU to prove is removed without a rule that says so).
GPU_KEEP = ("torch",)
DISTRIBUTION_STEP = "unused-distribution"
MODULE_STEP = "unimported-module"


@dataclass(frozen=True)
class DroppedDistribution:
    name: str
    files: int
    bytes: int


@dataclass(frozen=True)
class UsedResult:
    """What ``drop_unused`` took out: whole distributions, and modules of the kept ones."""

    distributions: tuple[DroppedDistribution, ...]
    modules: int
    module_bytes: int


def _pyc_of(rel: str, cache_tag: str) -> str:
    parent, _, name = rel.rpartition("/")
    pyc = f"__pycache__/{name[:-3]}.{cache_tag}.pyc"
    return f"{parent}/{pyc}" if parent else pyc


def _loads_without_import(path: str) -> bool:
    name = posixpath.basename(path)
    return ".so" in name or name.endswith(".pth")


def drop_unused(
    root: Path,
    site_packages: str,
    imported: Collection[str],
    dist_of: Mapping[str, str],
    keep: Sequence[str],
    python_version: str,
    ledger: Ledger,
    *,
    gpu: bool = False,
) -> UsedResult:
    """Remove from ``root`` (the image's ``/``) what the service never imported (see the
    module's doc). ``dist_of``: image path -> the distribution that installed it.
    ``gpu``: a CUDA build, served without a GPU (``GPU_KEEP``)."""
    site_path = "/" + site_packages.strip("/")
    site = root / site_path.lstrip("/")
    tag = "cpython-" + python_version.replace(".", "")
    keeper = KeepGlobs([*keep, *(GPU_KEEP if gpu else ())], site_path)
    wanted = set(imported)

    def rel(path: str) -> str | None:
        return path[len(site_path) + 1 :] if path.startswith(site_path + "/") else None

    # Each distribution's files still there: what its wheel installed (less what the rules
    # removed) and the .pyc compiled from its sources.
    by_dist: dict[str, list[str]] = {}
    for path, dist in dist_of.items():
        r = rel(path)
        pyc = posixpath.join(site_path, _pyc_of(r, tag)) if r and r.endswith(".py") else None
        for p in (path, pyc):
            if p is not None and os.path.lexists(root / p.lstrip("/")):
                by_dist.setdefault(dist, []).append(p)

    def kept(path: str) -> bool:
        r = rel(path)
        return r is not None and keeper(r)

    removed: list[str] = []  # relative to site-packages, for RECORD and empty folders

    def remove(path: str, step: str) -> int:
        file = root / path.lstrip("/")
        size = file.lstat().st_size
        file.unlink()
        ledger.add(step, path, size)
        if (r := rel(path)) is not None:
            removed.append(r)
        return size

    dropped: list[DroppedDistribution] = []
    modules = module_bytes = 0
    for dist in sorted(by_dist):
        paths = by_dist[dist]
        sources = [
            r for p in paths if (r := rel(p)) is not None and module_of_source(r) is not None
        ]
        used = any(module_of_source(r) in wanted for r in sources)
        if not used and not any(_loads_without_import(p) or kept(p) for p in paths):
            size = sum(remove(p, DISTRIBUTION_STEP) for p in paths)
            dropped.append(DroppedDistribution(dist, len(paths), size))
            continue
        present = set(paths)
        for source in sources:
            if module_of_source(source) in wanted or posixpath.basename(source) == "__main__.py":
                continue
            if keeper(source):
                continue
            for r in (source, _pyc_of(source, tag)):
                if posixpath.join(site_path, r) in present:
                    module_bytes += remove(posixpath.join(site_path, r), MODULE_STEP)
            modules += 1
    prune_empty_dirs(site, removed)
    rewrite_records(site, set(removed), set())
    return UsedResult(tuple(dropped), modules, module_bytes)
