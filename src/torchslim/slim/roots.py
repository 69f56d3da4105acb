"""How each ELF file of an image gets loaded, and in which process state.

* Programs (PT_INTERP or ET_EXEC) start their own process: they are the main map.
* ``import torch`` first: ``ctypes.CDLL`` of each library torch preloads
  (``slim.preload``: ``nvidia/*/lib``), of ``torch/lib/libtorch_global_deps.so``, then
  the import of ``torch/_C*.so``; then Triton's ``triton/_C/libtriton*.so`` (imported
  before any Triton plugin that needs ``libtriton.so``). Each sees what the previous
  ones loaded.
* Every other extension module or library is ``dlopen``ed by the Python interpreter
  *after* that import (the process has torch loaded: ``torchvision/_C.so`` finds
  ``libc10.so`` among the loaded objects, as it does at run time).
* A library that no program or extension module reaches through DT_NEEDED is checked as
  if ``dlopen``ed by path from Python (plugins loaded by ``dlopen``, cuDNN's sub-libraries);
  those that another unreached library needs come last, so a library is checked
  through the loader chain that brings it in whenever one exists.

The Python interpreter is the main map of every Python process: its DT_RPATH applies to
every search; a synthetic one without RPATH when it is not in the image (or a stub).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from torchslim.slim.elf import ElfInfo
from torchslim.slim.image import ImageView
from torchslim.slim.loader import Miss, Process, System
from torchslim.slim.preload import torch_preloads

TORCH_MARKER = "torch/__init__.py"
TORCH_IMPORT = ("torch/lib/libtorch_global_deps.so", "torch/_C.*.so", "torch/_C.so")
TRITON_IMPORT = ("triton/_C/libtriton*.so",)
EXTENSION_SUFFIXES = (".abi3.so",)


@dataclass(frozen=True)
class RootMiss:
    """A miss, and the object whose load (program start, import, dlopen) hit it."""

    root: str
    miss: Miss


def _is_extension(path: str) -> bool:
    name = posixpath.basename(path)
    return ".cpython-" in name or name.endswith(EXTENSION_SUFFIXES)


def _sites(view: ImageView) -> list[str]:
    return sorted(p[: -len(TORCH_MARKER) - 1] for p in view.paths if p.endswith("/" + TORCH_MARKER))


def _import_sequence(view: ImageView, site: str) -> list[str]:
    """Image paths ``import torch`` (and then Triton) loads by path, in order."""
    paths: list[str] = []
    marker = view.host(posixpath.join(site, TORCH_MARKER))
    if marker is not None:
        paths += [posixpath.join(site, rel) for rel in sorted(torch_preloads(marker.parent.parent))]
    for pattern in TORCH_IMPORT + TRITON_IMPORT:
        paths += view.glob(posixpath.join(site, pattern))
    return [p for p in dict.fromkeys(paths) if view.resolve(p) == p]


def _python(system: System, interpreter: str | None) -> Process:
    exe = system.resolve(interpreter) if interpreter else None
    if exe is not None and system.elf(exe) is not None:
        return Process.run(system, exe)[0]  # its own misses belong to the base image
    return Process(system)


def after_imports(
    view: ImageView, system: System, interpreter: str | None
) -> tuple[Process, list[str], list[RootMiss]]:
    """The Python process after ``import torch`` (and Triton): its state, what it loaded
    by path, and the misses on the way."""
    state = _python(system, interpreter)
    imported: list[str] = []
    out: list[RootMiss] = []
    for site in _sites(view):
        for path in _import_sequence(view, site):
            imported.append(path)
            out += [RootMiss(path, m) for m in state.dlopen(path)]
    return state, imported, out


def load_roots(
    view: ImageView,
    system: System,
    candidates: Sequence[str],
    interpreter: str | None,
) -> list[RootMiss]:
    """Load every candidate ELF file the way the image would; every miss, with its root."""
    infos: dict[str, ElfInfo] = {p: i for p in candidates if (i := system.elf(p)) is not None}
    state, imported, out = after_imports(view, system, interpreter)
    programs = [p for p, i in infos.items() if i.interp]
    extensions = [p for p in infos if _is_extension(p) and p not in imported and p not in programs]
    for path in programs:
        out += [RootMiss(path, m) for m in Process.run(system, path)[1]]
    for path in extensions:
        out += [RootMiss(path, m) for m in state.copy().dlopen(path)]
    needed = {n for i in infos.values() for n in i.needed}
    rest = [p for p in infos if p not in imported and p not in programs and p not in extensions]
    # Libraries nothing names first: they bring in the ones that only they need.
    rest.sort(key=lambda p: (_names(p, infos[p]) & needed != set(), p))
    for path in rest:
        if path not in system.reached:
            out += [RootMiss(path, m) for m in state.copy().dlopen(path)]
    return out


def _names(path: str, info: ElfInfo) -> set[str]:
    return {posixpath.basename(path)} | ({info.soname} if info.soname else set())
