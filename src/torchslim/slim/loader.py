"""A model of glibc's ``ld.so`` finding shared objects in an image, one process at a time.

What it follows (``elf/dl-load.c``, ``_dl_map_object``; ``elf/dl-deps.c``):

* an object is loaded once; a ``DT_NEEDED`` name that matches a loaded object's soname,
  path or a name it was loaded by is that object (so what ``import torch`` loaded
  satisfies ``libc10.so`` for ``torchvision/_C.so``);
* dependencies are mapped breadth first, each searched from the object that names it
  (its *loader*): a name with ``/`` is a path (``$ORIGIN`` expanded); otherwise
  1. when the loader has no ``DT_RUNPATH``: ``DT_RPATH`` of the loader, of its loader, and
     on up the chain, then of the executable — each object's ``DT_RPATH`` counts only
     when that object has no ``DT_RUNPATH`` (glibc drops RPATH when both are present),
  2. (``LD_LIBRARY_PATH``: not modelled; images set none),
  3. the loader's own ``DT_RUNPATH`` (never inherited),
  4. ``/etc/ld.so.cache`` of the image (``slim.ldcache``), and the ld.so.conf dirs,
  5. the trusted directories — 4 and 5 skipped for a loader with ``DF_1_NODEFLIB``;
* ``$ORIGIN`` is the directory of the object that carries the entry; ``$LIB`` is tried as
  each of ``lib/<multiarch>`` and ``lib64``; ``$PLATFORM`` is the machine name; entries
  relative to the working directory are not modelled;
* ``dlopen`` by path (Python importing an extension module, ``ctypes.CDLL``) makes an
  object with no loader: its dependencies see its RPATH chain, then the executable's;
* a found ELF file of another machine or class is skipped, as ld.so does; a found file
  that is not ELF (an empty stub of a base library) counts as found.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from torchslim.slim.elf import ElfInfo

MULTIARCH = {"EM_X86_64": "x86_64-linux-gnu", "EM_AARCH64": "aarch64-linux-gnu"}
PLATFORM = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}
RTLD = {
    "EM_X86_64": ("ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
    "EM_AARCH64": ("ld-linux-aarch64.so.1", "/lib/ld-linux-aarch64.so.1"),
}


def trusted_dirs(machine: str = "EM_X86_64") -> tuple[str, ...]:
    """glibc's built-in search directories (Debian multiarch and the lib64 layout)."""
    arch = MULTIARCH.get(machine, "x86_64-linux-gnu")
    return (f"/lib/{arch}", f"/usr/lib/{arch}", "/lib64", "/usr/lib64", "/lib", "/usr/lib")


@dataclass(frozen=True)
class Obj:
    """One loaded object: ``path`` in the image, its ELF facts, the object that loaded it."""

    path: str
    info: ElfInfo | None  # None: not ELF (a stub) or injected at run time
    loader: Obj | None = field(default=None, repr=False)

    @property
    def rpath(self) -> tuple[str, ...]:
        """DT_RPATH as the loader uses it: none when the object has a DT_RUNPATH."""
        if self.info is None or self.info.runpath:
            return ()
        return self.info.rpath

    @property
    def runpath(self) -> tuple[str, ...]:
        return self.info.runpath if self.info is not None else ()


@dataclass(frozen=True)
class Miss:
    """``file`` lists ``needed`` in DT_NEEDED and the loader finds no such object."""

    file: str
    needed: str


@dataclass
class System:
    """Facts shared by every process of one image."""

    resolve: Callable[[str], str | None]  # image path -> path of the file it names
    elf: Callable[[str], ElfInfo | None]  # resolved image path -> ELF facts
    cache: dict[str, list[str]]  # the image's ld.so.cache: soname -> paths
    conf_dirs: Sequence[str]  # the image's ld.so.conf directories (what ldconfig indexes)
    default_dirs: Sequence[str]
    injected: Callable[[str], bool]  # names the container runtime mounts (driver libs)
    machine: str = "EM_X86_64"
    reached: set[str] = field(default_factory=set)  # every object any process loaded

    def usable(self, path: str) -> bool:
        info = self.elf(path)
        if info is None:
            return True
        return info.machine == self.machine and info.elfclass == 64

    def expand(self, entry: str, origin: str) -> list[str]:
        """Directories one RPATH/RUNPATH entry names for an object in ``origin``."""
        if not entry:
            return []  # the working directory: not modelled
        path = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        path = path.replace("${PLATFORM}", "$PLATFORM").replace("${LIB}", "$LIB")
        path = path.replace("$PLATFORM", PLATFORM.get(self.machine, "x86_64"))
        libs = [f"lib/{MULTIARCH.get(self.machine, 'x86_64-linux-gnu')}", "lib64"]
        paths = [path.replace("$LIB", lib) for lib in libs] if "$LIB" in path else [path]
        return [posixpath.normpath(p) for p in paths if p.startswith("/") and "$" not in p]


class Process:
    """The objects one process has loaded; ``dlopen`` and ``run`` load more."""

    def __init__(self, system: System, main: Obj | None = None) -> None:
        self.system = system
        self.main = main
        self.by_name: dict[str, Obj] = {}
        self.by_path: dict[str, Obj] = {}
        name, path = RTLD.get(system.machine, RTLD["EM_X86_64"])
        self._add(Obj(path, None), [name])

    def copy(self) -> Process:
        """A process in the same state (objects are shared; the name tables are copied)."""
        other = Process.__new__(Process)
        other.system, other.main = self.system, self.main
        other.by_name, other.by_path = dict(self.by_name), dict(self.by_path)
        return other

    @classmethod
    def run(cls, system: System, exe: str) -> tuple[Process, list[Miss]]:
        """Start program ``exe`` (an image path): it is the main map."""
        main = Obj(exe, system.elf(exe))
        proc = cls(system, main)
        proc._add(main, [])
        return proc, proc._map_deps(main)

    def dlopen(self, path: str) -> list[Miss]:
        """``dlopen`` of an image path (resolved), as Python imports an extension module."""
        if path in self.by_path:
            return []
        obj = Obj(path, self.system.elf(path))
        self._add(obj, [path])
        return self._map_deps(obj)

    def loaded(self) -> list[str]:
        """Image paths of the objects loaded so far."""
        return sorted(self.by_path)

    def _add(self, obj: Obj, names: Iterable[str]) -> None:
        self.by_path[obj.path] = obj
        self.system.reached.add(obj.path)
        for name in [*names, obj.path]:
            self.by_name.setdefault(name, obj)
        if obj.info is not None and obj.info.soname:
            self.by_name.setdefault(obj.info.soname, obj)

    def _map_deps(self, first: Obj) -> list[Miss]:
        misses: list[Miss] = []
        queue = [first]
        for obj in queue:
            for name in obj.info.needed if obj.info is not None else ():
                if name in self.by_name:
                    continue
                path = self._search(name, obj)
                if path is None:
                    if self.system.injected(name):
                        self._add(Obj(f"<injected>/{name}", None), [name])
                    else:
                        misses.append(Miss(obj.path, name))
                    continue
                known = self.by_path.get(path)
                if known is not None:  # same file under another name
                    self.by_name.setdefault(name, known)
                    continue
                new = Obj(path, self.system.elf(path), obj)
                self._add(new, [name])
                queue.append(new)
        return misses

    def _search(self, name: str, loader: Obj) -> str | None:
        system = self.system
        origin = posixpath.dirname(loader.path)
        if "/" in name:
            path = name.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            return system.resolve(posixpath.join(origin, path))
        dirs: list[str] = []
        if not loader.runpath:
            chain: Obj | None = loader
            seen_main = False
            while chain is not None:
                dirs += self._dirs(chain.rpath, chain)
                seen_main |= chain is self.main
                chain = chain.loader
            if self.main is not None and not seen_main:
                dirs += self._dirs(self.main.rpath, self.main)
        dirs += self._dirs(loader.runpath, loader)
        found = self._first(name, dirs)
        if found is not None:
            return found
        nodeflib = loader.info is not None and loader.info.nodeflib
        default = tuple(system.default_dirs)
        indexed = [
            *system.cache.get(name, []),
            *(posixpath.join(d, name) for d in system.conf_dirs),
        ]
        for cached in indexed:
            if nodeflib and posixpath.dirname(cached) in default:
                continue
            hit = system.resolve(cached)
            if hit is not None and system.usable(hit):
                return hit
        return None if nodeflib else self._first(name, default)

    def _dirs(self, entries: Sequence[str], owner: Obj) -> list[str]:
        origin = posixpath.dirname(owner.path)
        return [d for e in entries for d in self.system.expand(e, origin)]

    def _first(self, name: str, dirs: Iterable[str]) -> str | None:
        for d in dirs:
            path = self.system.resolve(posixpath.join(d, name))
            if path is not None and self.system.usable(path):
                return path
        return None
