"""What the served proof saw the service load, kept for the next build's first try.

With ``bytecode = "imported"`` the Python layers keep a ``.pyc`` only for the modules the
service imported (``slim.bytecode``). Which those are is known only once the image is
served, so the build assembles with the last census of the same wheels and service,
serves, and assembles again (and serves again) only when the census it sees differs: the
image is the fixed point, the same on a fresh runner as on one with a history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from torchslim.atomic import write_atomic
from torchslim.build.layercache import input_key
from torchslim.build.plan import Plan
from torchslim.cache import cache_root
from torchslim.debian import RootfsInfo
from torchslim.deps.lock import Lock

CENSUS_FORMAT = 2  # 2: the files the service opened (proof.census)


def _path(plan: Plan, lock: Lock, rootfs: RootfsInfo, kind: str = "census") -> Path:
    key = input_key(
        kind,
        CENSUS_FORMAT,
        sorted(w.sha256 for w in lock.packages),
        plan.profile,
        plan.cfg.name,
        list(plan.cfg.cmd),
        rootfs.site_packages,
    )
    return cache_root() / "census" / (key.removeprefix("sha256:") + ".json")


def _read(path: Path) -> list[str] | None:
    """A saved census (a JSON list of strings), sorted; None if absent or not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or not all(isinstance(m, str) for m in data):
        return None
    return sorted(data)


def _write(path: Path, items: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(sorted(items)))


def saved_imports(plan: Plan, lock: Lock, rootfs: RootfsInfo) -> list[str] | None:
    """The site-packages modules the last served proof of this service imported, if any."""
    return _read(_path(plan, lock, rootfs))


def save_imports(plan: Plan, lock: Lock, rootfs: RootfsInfo, imports: Sequence[str]) -> None:
    _write(_path(plan, lock, rootfs), imports)


# Where the service's files cannot be: what the kernel and the sandbox provide.
_NOT_IMAGE = ("/proc/", "/sys/", "/dev/", "/tmp/", "/run/")


def prefetch_paths(opened: Sequence[str]) -> list[str]:
    """The image paths (sorted) of ``Served.opened`` that an eStargz layer can hold."""
    return sorted({p.removesuffix(" (deleted)") for p in opened if not p.startswith(_NOT_IMAGE)})


def saved_prefetch(plan: Plan, lock: Lock, rootfs: RootfsInfo) -> list[str] | None:
    """The files the last served proof of this service opened (``--compression estargz``
    puts them first), if any."""
    return _read(_path(plan, lock, rootfs, "prefetch"))


def save_prefetch(plan: Plan, lock: Lock, rootfs: RootfsInfo, paths: Sequence[str]) -> None:
    _write(_path(plan, lock, rootfs, "prefetch"), paths)
