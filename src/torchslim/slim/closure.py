"""The ELF closure check: every kept program, extension module and library loads in the image.

The image filesystem is the union of ``trees`` (``slim.image``). Each ELF file under
``check_prefixes`` is loaded the way the image would load it (``slim.roots``: programs,
``import torch`` first, then every extension module and library as Python ``dlopen``s
it), with the dynamic loader modelled by ``slim.loader`` (loaded objects by soname,
DT_RPATH along the loading chain, DT_RUNPATH, the image's ``ld.so.cache`` and
``ld.so.conf``, trusted directories). Driver libraries the NVIDIA container toolkit
mounts at run time (``DRIVER_LIBS``) count as present.

A miss is judged against the tree before slimming (the ``removed`` files as they were, or
the ``backup`` that ``slim_tree`` kept): when the unslimmed tree misses it too, it is the
upstream package's (a warning naming the distribution that owns the file); only a miss
slimming caused is an error. ``allow_missing`` (soname -> reason) and the plugins in
``OPTIONAL_PLUGINS`` (dlopened only for hardware a container base never carries) are
warnings too.
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchslim.errors import BuildError
from torchslim.slim.backup import Backup
from torchslim.slim.elf import ElfInfo, elf_info
from torchslim.slim.globs import glob_match
from torchslim.slim.image import ImageView
from torchslim.slim.ldcache import ld_conf_dirs, parse_ld_cache
from torchslim.slim.loader import System, trusted_dirs
from torchslim.slim.owners import owner_of, package_owners
from torchslim.slim.roots import RootMiss, load_roots

log = logging.getLogger(__name__)

# The loader's trusted directories, plus /usr/local/lib that every Debian-family
# ld.so.conf lists (used when the image carries no ld.so.cache/ld.so.conf of its own).
SYSTEM_LIB_DIRS: tuple[str, ...] = ("/usr/local/lib", *trusted_dirs())

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


def short(path: str) -> str:
    """An image path relative to its ``*-packages`` directory (else without the leading /)."""
    parts = path.split("/")
    sites = [i for i, part in enumerate(parts) if part.endswith("-packages")]
    return "/".join(parts[sites[-1] + 1 :]) if sites else path.lstrip("/")


@dataclass(frozen=True)
class Missing:
    """``file`` (image path) lists ``needed`` in DT_NEEDED, and the loader cannot find it."""

    file: str
    needed: str
    removed_by: str | None = None  # slim rule that removed a file of that name, if any
    optional: bool = False  # an optional plugin's need (OPTIONAL_PLUGINS)
    root: str | None = None  # the program, import or dlopen that loads ``file``
    package: str | None = None  # ``Name Version`` of the distribution owning ``file``
    upstream: bool = False  # the tree before slimming misses it too
    allowed: str | None = None  # the allow-missing reason
    removed_path: str | None = None  # the removed file that provided ``needed``
    found_at: str | None = None  # a file of that name elsewhere in the image

    @property
    def fatal(self) -> bool:
        """Slimming caused it and nothing excuses it."""
        return not (self.optional or self.upstream or self.allowed is not None)

    def subject(self) -> str:
        """``file`` (and the root that loads it, when another)."""
        via = f" (loaded by {short(self.root)})" if self.root and self.root != self.file else ""
        return f"{short(self.file)}{via}"

    def hint(self) -> str:
        """Why the name is not found, in a few words."""
        if self.removed_by:
            gone = f" ({short(self.removed_path)})" if self.removed_path else ""
            return f"removed by rule {self.removed_by}{gone}"
        if self.found_at:
            return f"{short(self.found_at)} is not on its search path"
        return "no file of that name in the image"

    def category(self) -> str:
        """``hint`` without the file names, so that one file's misses group together."""
        if self.removed_by:
            return f"removed by rule {self.removed_by}"
        if self.found_at:
            return "in the image, not on its search path"
        return "no file of that name in the image"

    def message(self) -> str:
        return f"{self.subject()} needs {self.needed}: {self.hint()}"


class ClosureError(BuildError):
    """A kept ELF file needs a library that slimming removed."""


def _is_driver(name: str, driver_libs: frozenset[str]) -> bool:
    if name in driver_libs:
        return True
    return any(d.endswith(".so") and name.startswith(d + ".") for d in driver_libs)


def image_system(
    view: ImageView,
    dirs: Sequence[str] = SYSTEM_LIB_DIRS,
    driver_libs: frozenset[str] = DRIVER_LIBS,
    machine: str = "EM_X86_64",
) -> System:
    """The loader facts of ``view``: its ELF files, ld.so.cache, ld.so.conf, trusted dirs."""
    infos: dict[str, ElfInfo | None] = {}

    def elf(path: str) -> ElfInfo | None:
        if path not in infos:
            host = view.host(path)
            infos[path] = elf_info(host) if host is not None else None
        return infos[path]

    def read_text(path: str) -> str | None:
        raw = view.read_bytes(path)
        return raw.decode("utf-8", "replace") if raw is not None else None

    cache_bytes = view.read_bytes("/etc/ld.so.cache")
    return System(
        resolve=view.resolve,
        elf=elf,
        cache=parse_ld_cache(cache_bytes, machine) if cache_bytes else {},
        conf_dirs=ld_conf_dirs(read_text, view.glob),
        default_dirs=tuple(dirs),
        injected=lambda name: _is_driver(name, driver_libs),
        machine=machine,
    )


def _misses(
    view: ImageView,
    prefixes: Sequence[str] | None,
    dirs: Sequence[str],
    driver_libs: frozenset[str],
    machine: str,
    interpreter: str | None,
) -> list[RootMiss]:
    system = image_system(view, dirs, driver_libs, machine)
    candidates = []
    for path, host in sorted(view.paths.items()):
        if host is None or host.is_symlink():
            continue
        if prefixes is not None and not any(path.startswith(p.rstrip("/") + "/") for p in prefixes):
            continue
        info = system.elf(path)
        if info is not None and info.kind in ("ET_DYN", "ET_EXEC") and system.usable(path):
            candidates.append(path)
    seen: set[tuple[str, str]] = set()
    out = []
    for rm in load_roots(view, system, candidates, interpreter):
        key = (rm.miss.file, rm.miss.needed)
        if key not in seen:
            seen.add(key)
            out.append(rm)
    return sorted(out, key=lambda rm: (rm.miss.file, rm.miss.needed))


def _optional(paths: Sequence[str | None]) -> bool:
    """True when a path, relative to its ``*-packages`` directory, is an optional plugin."""
    for path in paths:
        parts = (path or "").split("/")
        sites = [i for i, part in enumerate(parts) if part.endswith("-packages")]
        if sites:
            rel = "/".join(parts[sites[-1] + 1 :])
            if any(glob_match(g, rel) for g, _ in OPTIONAL_PLUGINS):
                return True
    return False


def check_closure(
    trees: Sequence[tuple[Path, str]],
    *,
    system_lib_dirs: Sequence[str] = SYSTEM_LIB_DIRS,
    driver_libs: frozenset[str] = DRIVER_LIBS,
    removed: Mapping[str, str] | None = None,
    check_prefixes: Sequence[str] | None = None,
    backup: Path | None = None,
    allow_missing: Mapping[str, str] | None = None,
    interpreter: str | None = None,
    machine: str = "EM_X86_64",
) -> list[Missing]:
    """Every DT_NEEDED the image cannot satisfy, sorted by file then name.

    ``removed`` maps image paths a slimming step deleted to the rule that did it (what
    ``slim_tree`` returns); ``backup`` is the directory ``slim_tree(backup=...)`` filled.
    With either, each miss is checked against the tree as it was before slimming
    (``upstream``); with neither, nothing was removed and every miss is upstream.
    ``check_prefixes`` limits which ELF files are loaded as roots (all by default);
    every tree still provides libraries. ``interpreter`` is the image path of Python.
    """
    removed = dict(removed or {})
    if backup is not None:
        for change in Backup.load(backup).changes.values():
            if change.action == "remove":
                removed.setdefault(change.path, change.rule)
    allow = dict(allow_missing or {})
    args = (check_prefixes, system_lib_dirs, driver_libs, machine, interpreter)
    view = ImageView(trees)
    found = _misses(view, *args)
    if not found:
        return []
    before: set[tuple[str, str]] = {(rm.miss.file, rm.miss.needed) for rm in found}
    backup_files = backup / "files" if backup is not None else None
    if removed or (backup_files is not None and backup_files.is_dir()):
        extra = [(backup_files, "/")] if backup_files is not None and backup_files.is_dir() else []
        unslimmed = ImageView([*extra, *trees], virtual=removed)
        before = {(rm.miss.file, rm.miss.needed) for rm in _misses(unslimmed, *args)}
    by_name: dict[str, tuple[str, str]] = {}
    for path, rule in sorted(removed.items()):
        by_name.setdefault(posixpath.basename(path), (rule, path))
        kept = backup_files / path.lstrip("/") if backup_files is not None else None
        info = elf_info(kept) if kept is not None and kept.is_file() else None
        if info is not None and info.soname:
            by_name.setdefault(info.soname, (rule, path))
    owners = package_owners(view)
    names: dict[str, str] = {}
    for path in view.paths:
        names.setdefault(posixpath.basename(path), path)
    out = []
    for rm in found:
        m = rm.miss
        hit = by_name.get(m.needed)
        out.append(
            Missing(
                file=m.file,
                needed=m.needed,
                removed_by=hit[0] if hit else None,
                optional=_optional([m.file, rm.root]),
                root=rm.root,
                package=owner_of(m.file, owners) or owner_of(rm.root, owners),
                upstream=(m.file, m.needed) in before,
                allowed=allow.get(m.needed),
                removed_path=hit[1] if hit else None,
                found_at=names.get(m.needed),
            )
        )
    return out


def _grouped(missing: Sequence[Missing]) -> list[str]:
    """Per distribution: each file, the names it misses and why (one line when one file)."""
    groups: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(dict)
    for m in missing:
        per_file = groups[m.package or "files of no installed package"]
        per_file.setdefault((m.subject(), m.category()), []).append(m.needed)
    lines = []
    for pkg, per_file in sorted(groups.items()):
        items = [
            f"{subj} needs {', '.join(names)} ({why})" for (subj, why), names in per_file.items()
        ]
        if len(items) == 1:
            lines.append(f"  {pkg}: {items[0]}")
        else:
            lines += [f"  {pkg}:", *(f"    {item}" for item in items)]
    return lines


def upstream_warnings(missing: Sequence[Missing]) -> list[str]:
    """One warning per distribution whose files miss libraries as published (not slimming's
    doing): they fail to load only if used, so the build goes on and the proof decides."""
    upstream = [m for m in missing if m.upstream and not m.optional and m.allowed is None]
    by_package: dict[str, list[Missing]] = defaultdict(list)
    for m in upstream:
        by_package[m.package or "files of no installed package"].append(m)
    out = []
    for pkg, items in sorted(by_package.items()):
        per_file: dict[tuple[str, str], list[str]] = {}
        for m in items:
            per_file.setdefault((m.subject(), m.category()), []).append(m.needed)
        needs = "; ".join(
            f"{subj} needs {', '.join(n)} ({why})" for (subj, why), n in per_file.items()
        )
        out.append(
            f"{pkg} as published: {needs}; add the package that provides it or list it "
            "under allow-missing with a reason"
        )
    return out


def raise_for_missing(missing: Sequence[Missing]) -> None:
    """Warn about upstream, optional and allowed misses; raise ClosureError for the rest.

    The error lists every miss slimming caused, one line per distribution, after a
    first line that says what to do.
    """
    for m in missing:
        if m.allowed is not None:
            log.info("closure: allow-missing %s (%s): %s", m.needed, m.allowed, m.message())
        elif m.optional:
            log.warning("closure: optional plugin %s", m.message())
    # Misses the packages have as published are the caller's to report (upstream_warnings).
    fatal = [m for m in missing if m.fatal]
    if not fatal:
        return
    kept = sorted({m.removed_path for m in fatal if m.removed_path})
    how = "keep them with " + " ".join(f"--keep {p}" for p in kept) if kept else ""
    how = (how + " or " if how else "use ") + "a lighter --profile"
    raise ClosureError(
        f"slimming removed {len({m.needed for m in fatal})} libraries that kept files "
        f"need: {how}, or list the soname under allow-missing with a reason\n"
        + "\n".join(_grouped(fatal))
    )
