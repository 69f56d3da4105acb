"""What the served proof saw the service load, kept for the next build's first try.

With ``bytecode = "imported"`` the Python layers keep a ``.pyc`` only for the modules the
service imported (``slim.bytecode``). Which those are is known only once the image is
served, so the build assembles with the last census of the same wheels and service,
serves, and assembles again (and serves again) only when the census it sees differs: the
image is the fixed point, the same on a fresh runner as on one with a history. The lists
are kept by ``build.learned`` (locally, and through the registry build cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchslim.build import learned
from torchslim.build.layercache import LayerCache, input_key
from torchslim.build.plan import Plan
from torchslim.debian import RootfsInfo
from torchslim.deps.lock import Lock

CENSUS_FORMAT = 2  # 2: the files the service opened (proof.census)


def _key(plan: Plan, lock: Lock, rootfs: RootfsInfo, kind: str) -> str:
    return input_key(
        kind,
        CENSUS_FORMAT,
        sorted(w.sha256 for w in lock.packages),
        plan.profile,
        plan.cfg.name,
        list(plan.cfg.cmd),
        rootfs.site_packages,
    )


def _strings(data: list[Any]) -> bool:
    return all(isinstance(m, str) for m in data)


def _read(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo, kind: str
) -> list[str] | None:
    """A saved list of strings, sorted; None if absent or not one."""
    data = learned.read(layers, kind, _key(plan, lock, rootfs, kind), _strings)
    return None if data is None else sorted(data)


def _write(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo, kind: str, items: Sequence[str]
) -> None:
    learned.write(layers, kind, _key(plan, lock, rootfs, kind), sorted(items))


def saved_imports(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo
) -> list[str] | None:
    """The site-packages modules the last served proof of this service imported, if any."""
    return _read(layers, plan, lock, rootfs, "census")


def save_imports(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo, imports: Sequence[str]
) -> None:
    _write(layers, plan, lock, rootfs, "census", imports)


# Where the service's files cannot be: what the kernel and the sandbox provide.
_NOT_IMAGE = ("/proc/", "/sys/", "/dev/", "/tmp/", "/run/")


def prefetch_paths(opened: Sequence[str]) -> list[str]:
    """The image paths (sorted) of ``Served.opened`` that an eStargz layer can hold."""
    return sorted({p.removesuffix(" (deleted)") for p in opened if not p.startswith(_NOT_IMAGE)})


def saved_prefetch(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo
) -> list[str] | None:
    """The files the last served proof of this service opened (``--compression estargz``
    puts them first), if any."""
    return _read(layers, plan, lock, rootfs, "prefetch")


def save_prefetch(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo, paths: Sequence[str]
) -> None:
    _write(layers, plan, lock, rootfs, "prefetch", paths)
