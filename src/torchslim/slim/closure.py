"""The ELF closure check: every ``DT_NEEDED`` of every kept ELF file resolves in the image.

The image filesystem is the union of ``trees``: (staging directory, image prefix) pairs,
e.g. ``(rootfs, "/")`` and ``(site_stage, "/usr/local/lib/python3.11/site-packages")``.
For each x86-64 ELF shared object or executable found there (symlinks are names, not
objects), each needed name must be found the way ``ld.so`` finds it:

1. a name with a ``/`` is a path;
2. ``DT_RPATH`` of the object (only when it has no ``DT_RUNPATH``), then ``DT_RUNPATH``,
   with ``$ORIGIN``/``${ORIGIN}`` expanded to the object's image directory (the RPATH of
   the loading chain, LD_LIBRARY_PATH and ``$LIB``/``$PLATFORM`` are not modelled: the
   check can only be stricter than the loader);
3. ``system_lib_dirs``: the ld.so.conf / ld.so.cache directories and the trusted defaults;
4. a library that something loaded earlier by soname: torch's preload list
   (``slim.preload``; ``import torch`` loads those from ``nvidia/*/lib`` before
   ``torch._C``) and the Python extension ``triton/_C/libtriton.so`` (imported before
   Triton loads any plugin that needs ``libtriton.so``) — the loader reuses an
   already-loaded object whose soname matches a ``DT_NEEDED`` entry;
5. a driver library the NVIDIA container toolkit mounts at run time (``DRIVER_LIBS``).

Plugins that their host library only ``dlopen``s for hardware or cluster software a
container base never carries (``OPTIONAL_PLUGINS``: GPUDirect-RDMA, NVSHMEM MPI/PMIx/UCX
bootstraps and transports) are reported with ``optional=True``: a warning, not an error.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from torchslim.errors import BuildError
from torchslim.slim.elf import is_elf
from torchslim.slim.globs import glob_match
from torchslim.slim.preload import torch_preloads

log = logging.getLogger(__name__)

# The directories of Debian's /etc/ld.so.conf.d (multiarch, /usr/local/lib) and the
# loader's trusted defaults.
SYSTEM_LIB_DIRS: tuple[str, ...] = (
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)

# User-space driver libraries the NVIDIA container toolkit injects (``compute`` and
# ``utility`` capabilities). An entry ending in ``.so`` also covers the driver-versioned
# names (``libnvidia-gpucomp.so.580.65.06``).
DRIVER_LIBS: frozenset[str] = frozenset(
    {
        "libcuda.so",
        "libcuda.so.1",
        "libcudadebugger.so.1",
        "libnvidia-ml.so.1",
        "libnvidia-ptxjitcompiler.so.1",
        "libnvidia-nvvm.so.4",
        "libnvidia-nvvm.so",
        "libnvidia-gpucomp.so",
        "libnvidia-opencl.so.1",
        "libnvidia-cfg.so.1",
        "libnvidia-allocator.so.1",
        "libnvidia-pkcs11.so",
        "libnvidia-pkcs11-openssl3.so",
        "libnvidia-fatbinaryloader.so",
        "libnvidia-compiler.so",
    }
)

# Paths relative to a site-packages directory; missing needs of these are warnings.
OPTIONAL_PLUGINS: tuple[tuple[str, str], ...] = (
    ("nvidia/*/lib/libcufile_rdma.so*", "GPUDirect Storage over RDMA needs the host's rdma-core"),
    ("nvidia/nvshmem/lib/nvshmem_bootstrap_*.so*", "NVSHMEM bootstrap for MPI/PMIx/OpenSHMEM"),
    ("nvidia/nvshmem/lib/nvshmem_transport_*.so*", "NVSHMEM transport for IB/UCX/libfabric"),
)

# Python extension modules imported before anything needs their soname.
PYTHON_LOADED: tuple[str, ...] = ("triton/_C/libtriton.so",)

_SITE_MARKER = "torch/__init__.py"


@dataclass(frozen=True)
class Missing:
    """``file`` (image path) lists ``needed`` in DT_NEEDED, and the image lacks it."""

    file: str
    needed: str
    removed_by: str | None = None  # slim rule that removed a file of that name, if any
    optional: bool = False

    def message(self) -> str:
        where = f" (removed by rule {self.removed_by})" if self.removed_by else ""
        return f"{self.file.lstrip('/')} needs {self.needed}, which is not in the image{where}"


class ClosureError(BuildError):
    """A kept ELF file needs a library that the image does not hold."""


@dataclass(frozen=True)
class _Dyn:
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None


def _dynamic(path: Path) -> _Dyn | None:
    """DT_NEEDED/RPATH/RUNPATH/SONAME of an x86-64 ELF; None for other files."""
    if not is_elf(path):
        return None
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_X86_64" or elf["e_type"] not in ("ET_DYN", "ET_EXEC"):
                return None
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            soname: str | None = None
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        needed.append(str(tag.needed))  # type: ignore[attr-defined]
                    elif kind == "DT_RPATH":
                        rpath.extend(str(tag.rpath).split(":"))  # type: ignore[attr-defined]
                    elif kind == "DT_RUNPATH":
                        runpath.extend(str(tag.runpath).split(":"))  # type: ignore[attr-defined]
                    elif kind == "DT_SONAME":
                        soname = str(tag.soname)  # type: ignore[attr-defined]
            return _Dyn(tuple(needed), tuple(rpath), tuple(runpath), soname)
    except (ELFError, OSError, ValueError) as exc:
        log.warning("closure: cannot read ELF %s (%s); not checked", path, exc)
        return None


class _Image:
    """The union of the trees: image path -> host path, for files and symlinks."""

    def __init__(self, trees: Sequence[tuple[Path, str]]) -> None:
        self.paths: dict[str, Path] = {}
        for host_root, prefix in trees:
            prefix = "/" + prefix.strip("/")
            for dirpath, dirnames, filenames in os.walk(host_root):
                rel = Path(dirpath).relative_to(host_root).as_posix()
                image_dir = prefix if rel == "." else posixpath.join(prefix, rel)
                for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
                    self.paths[posixpath.join(image_dir, name)] = Path(dirpath, name)

    def exists(self, image_path: str, depth: int = 0) -> bool:
        """True when ``image_path`` is a file in the image (symlinks followed inside it)."""
        image_path = posixpath.normpath(image_path)
        host = self.paths.get(image_path)
        if host is None:
            return self._via_dir_link(image_path, depth)
        if not host.is_symlink():
            return True
        if depth > 16:
            return False
        target = os.readlink(host)
        if not target.startswith("/"):
            target = posixpath.join(posixpath.dirname(image_path), target)
        return self.exists(target, depth + 1)

    def _via_dir_link(self, image_path: str, depth: int) -> bool:
        """Follow a symlinked parent directory (``/lib`` -> ``usr/lib`` in merged-/usr)."""
        parts = image_path.strip("/").split("/")
        for i in range(len(parts) - 1, 0, -1):
            parent = "/" + "/".join(parts[:i])
            host = self.paths.get(parent)
            if host is not None and host.is_symlink() and depth <= 16:
                target = os.readlink(host)
                if not target.startswith("/"):
                    target = posixpath.join(posixpath.dirname(parent), target)
                return self.exists(posixpath.join(target, *parts[i:]), depth + 1)
        return False


def _site_dirs(image: _Image) -> list[str]:
    """Image directories that hold ``torch/__init__.py`` or ``triton/`` (site-packages)."""
    sites = set()
    for p in image.paths:
        if p.endswith("/" + _SITE_MARKER):
            sites.add(p[: -len(_SITE_MARKER) - 1])
        elif p.endswith("/" + PYTHON_LOADED[0]):
            sites.add(p[: -len(PYTHON_LOADED[0]) - 1])
    return sorted(sites)


def _loaded_names(image: _Image, sites: list[str]) -> set[str]:
    """Sonames (and file names) of libraries torch preloads or Python imports first."""
    names: set[str] = set()
    for site in sites:
        marker = image.paths.get(posixpath.join(site, _SITE_MARKER))
        rels: set[str] = set()
        if marker is not None:
            rels |= torch_preloads(marker.parent.parent)
        rels |= {p for p in PYTHON_LOADED if posixpath.join(site, p) in image.paths}
        for rel in rels:
            host = image.paths[posixpath.join(site, rel)]
            names.add(posixpath.basename(rel))
            dyn = _dynamic(host)
            if dyn is not None and dyn.soname:
                names.add(dyn.soname)
    return names


def _is_driver(name: str, driver_libs: frozenset[str]) -> bool:
    if name in driver_libs:
        return True
    return any(d.endswith(".so") and name.startswith(d + ".") for d in driver_libs)


def _expand(entry: str, origin: str) -> str | None:
    if not entry:
        return None  # an empty RUNPATH element means the current directory: not modelled
    path = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
    if "$" in path or not path.startswith("/"):
        return None
    return posixpath.normpath(path)


def _resolves(image: _Image, name: str, origin: str, dirs: Sequence[str]) -> bool:
    if "/" in name:
        return image.exists(name if name.startswith("/") else posixpath.join(origin, name))
    return any(image.exists(posixpath.join(d, name)) for d in dirs)


def _optional(image_path: str, sites: list[str]) -> bool:
    for site in sites:
        if image_path.startswith(site + "/"):
            rel = image_path[len(site) + 1 :]
            return any(glob_match(g, rel) for g, _ in OPTIONAL_PLUGINS)
    return False


def check_closure(
    trees: Sequence[tuple[Path, str]],
    *,
    system_lib_dirs: Sequence[str] = SYSTEM_LIB_DIRS,
    driver_libs: frozenset[str] = DRIVER_LIBS,
    removed: Mapping[str, str] | None = None,
    check_prefixes: Sequence[str] | None = None,
) -> list[Missing]:
    """Every unresolved DT_NEEDED of the image's ELF files, sorted by file then name.

    ``removed`` maps image paths a slimming step deleted to the rule that did it (what
    ``slim_tree`` returns), so a Missing can name the rule. ``check_prefixes`` limits
    which ELF files are checked (all by default); every tree still provides libraries.
    """
    image = _Image(trees)
    sites = _site_dirs(image)
    loaded = _loaded_names(image, sites)
    removed_names: dict[str, str] = {}
    for path, rule in sorted((removed or {}).items()):
        removed_names.setdefault(posixpath.basename(path), rule)
    out: list[Missing] = []
    for image_path, host in sorted(image.paths.items()):
        if check_prefixes is not None and not any(
            image_path.startswith(p.rstrip("/") + "/") for p in check_prefixes
        ):
            continue
        dyn = _dynamic(host)
        if dyn is None:
            continue
        origin = posixpath.dirname(image_path)
        search = [] if dyn.runpath else list(dyn.rpath)
        search += list(dyn.runpath)
        dirs = [d for d in (_expand(e, origin) for e in search) if d is not None]
        dirs += list(system_lib_dirs)
        for name in dyn.needed:
            if _resolves(image, name, origin, dirs) or name in loaded:
                continue
            if "/" not in name and _is_driver(name, driver_libs):
                continue
            out.append(
                Missing(image_path, name, removed_names.get(name), _optional(image_path, sites))
            )
    return out


def raise_for_missing(missing: Sequence[Missing]) -> None:
    """Log optional misses; raise ClosureError naming the first required one (and a count)."""
    for m in missing:
        if m.optional:
            log.warning("closure: optional plugin %s", m.message())
    required = [m for m in missing if not m.optional]
    if not required:
        return
    more = f" (and {len(required) - 1} more)" if len(required) > 1 else ""
    raise ClosureError(
        f"{required[0].message()}{more}: keep it with --keep or a lighter slim profile, "
        "or add the package that provides it"
    )
