"""The CUDA libraries torch itself loads from ``nvidia/*/lib`` when ``import torch`` runs.

Read from the installed ``torch/__init__.py`` (never a copy of it in torchslim), so the
list follows the torch version in the image. torch 2.x names them in ``_preload_cuda_deps``
as ``("cublas", "libcublas.so.*[0-9]")`` pairs (older releases: a ``cuda_libs`` dict
``"cublas": "libcublas.so.*[0-9]"``) and looks for each glob in
``<sys.path entry>/nvidia/<folder>/lib``, ``<entry>/nvidia/cu<major>/lib`` (the CUDA 13
wheels' shared directory) and ``<entry>/<folder>/lib``, loading the first match with
``ctypes.CDLL``. Once loaded, a library satisfies every later ``DT_NEEDED`` of its soname
(the dynamic loader matches already-loaded objects by soname before searching paths), so
slimming must keep these files, and the closure check may count them as resolved.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from pathlib import Path

# ("folder", "libname.so.*[0-9]") in a list or a _preload_cuda_lib(...) call ...
_PAIR = re.compile(r'\(\s*"(\w+)"\s*,\s*"(lib[\w.+-]*\.so[^"]*)"')
# ... or "folder": "libname.so.*[0-9]" in the older dict form.
_ITEM = re.compile(r'"(\w+)"\s*:\s*"(lib[\w.+-]*\.so[^"]*)"')
_CUDA = re.compile(r"""^cuda\s*(?::\s*[\w\[\]|. ]+)?=\s*['"](\d+)\.""", re.MULTILINE)


def preload_globs(init_text: str) -> list[tuple[str, str]]:
    """(folder, file glob) pairs torch's ``__init__.py`` preloads, in its order."""
    seen: list[tuple[str, str]] = []
    for m in [*_PAIR.finditer(init_text), *_ITEM.finditer(init_text)]:
        pair = (m.group(1), m.group(2))
        if pair not in seen:
            seen.append(pair)
    return seen


def _cuda_major(site: Path) -> str | None:
    try:
        text = (site / "torch" / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    m = _CUDA.search(text)
    return m.group(1) if m else None


@lru_cache(maxsize=32)
def torch_preloads(site: Path) -> frozenset[str]:
    """Paths (relative to ``site``) of the libraries torch in ``site`` would preload."""
    try:
        text = (site / "torch" / "__init__.py").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    major = _cuda_major(site)
    found: set[str] = set()
    for folder, pattern in preload_globs(text):
        dirs = [f"nvidia/{folder}/lib", f"{folder}/lib"]
        if major is not None:
            dirs.append(f"nvidia/cu{major}/lib")
        for d in dirs:
            base = site / d
            if not base.is_dir():
                continue
            for p in sorted(base.iterdir()):
                if fnmatch.fnmatchcase(p.name, pattern) and p.is_file():
                    found.add(f"{d}/{p.name}")
    return frozenset(found)
