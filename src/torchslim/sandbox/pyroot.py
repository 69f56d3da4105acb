"""A minimal root filesystem holding this host's Python, to build sdists in the sandbox.

The interpreter torchslim runs on (its base interpreter, not a venv's link), its
standard library and every shared library ``ldd`` says they need are hard-linked (copied
across file systems) into a directory under the cache, at the paths they have on the
host, so the interpreter finds its prefix as it does here. ``/etc/passwd`` names the
build user (uid 1000); ``/src``, ``/out`` and ``/build`` are empty folders for binds.
Nothing else of the host is in it: no site-packages, no home, no configuration.

One root per interpreter (path and version), made once and reused; it is only ever
mounted read-only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from torchslim.atomic import atomic_path
from torchslim.cache import cache_root
from torchslim.errors import BuildError

BUILD_USER = (1000, 1000)
MOUNTS = ("src", "out", "build")  # the folders binds go onto
SKIP_STDLIB = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
     "site-packages", "dist-packages", "__pycache__"}
)  # fmt: skip
_LDD = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")
_DONE = ".torchslim-pyroot"


@dataclass(frozen=True)
class PyRoot:
    """A root made by :func:`python_root`: its folder and the interpreter inside it."""

    path: Path
    python: str  # absolute path inside the root
    version: str  # "3.11"


def host_python() -> tuple[str, Path, str]:
    """The real interpreter behind ``sys.executable``, its stdlib and its ``X.Y``."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    return exe, stdlib, f"{sys.version_info[0]}.{sys.version_info[1]}"


def python_root() -> PyRoot:
    """The cached root for this host's interpreter, made on first use."""
    exe, stdlib, version = host_python()
    key = hashlib.sha256(f"{exe}\0{sys.version}\0{stdlib}".encode()).hexdigest()[:16]
    dest = cache_root() / "pyroots" / key
    if not (dest / _DONE).is_file():
        with atomic_path(dest) as tmp:
            make_root(tmp, exe, stdlib)
    return PyRoot(dest, exe, version)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _put(root: Path, host_path: str) -> None:
    """A host file at its own path in ``root`` (a soname link under its own name)."""
    real = os.path.realpath(host_path)
    named = os.path.join(os.path.realpath(os.path.dirname(host_path)), os.path.basename(host_path))
    dest = root / named.lstrip("/")
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    _link_or_copy(real, str(dest))


def _libraries(binaries: list[str]) -> list[str]:
    """Every shared library the binaries load, as ``ldd`` lists them."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise BuildError("building from source needs ldd (libc-bin) on this host")
    found: set[str] = set()
    for i in range(0, len(binaries), 200):
        proc = subprocess.run(
            [ldd, *binaries[i : i + 200]], capture_output=True, text=True, check=False
        )
        found.update(_LDD.findall(proc.stdout))
    return sorted(found)


def _skip(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n in SKIP_STDLIB or n.startswith("config-")]


def make_root(dest: Path, exe: str, stdlib: Path) -> None:
    """Lay the root out in ``dest`` (see the module docstring)."""
    for alias in ("bin", "lib", "lib64", "sbin"):
        (dest / "usr" / alias).mkdir(parents=True, exist_ok=True)
        os.symlink(f"usr/{alias}", dest / alias)
    dynload = stdlib / "lib-dynload"
    modules = sorted(str(p) for p in dynload.glob("*.so")) if dynload.is_dir() else []
    for lib in _libraries([exe, *modules]):
        _put(dest, lib)
    _put(dest, exe)
    inside = dest / str(stdlib).lstrip("/")
    shutil.copytree(stdlib, inside, symlinks=True, copy_function=_link_or_copy, ignore=_skip)
    for name in ("python3", "python"):
        if not os.path.lexists(dest / "usr/bin" / name):
            os.symlink(exe, dest / "usr/bin" / name)
    (dest / "etc").mkdir(exist_ok=True)
    uid, gid = BUILD_USER
    (dest / "etc/passwd").write_text(
        f"root:x:0:0::/root:/sbin/nologin\nbuild:x:{uid}:{gid}::/tmp:/sbin/nologin\n"
    )
    (dest / "etc/group").write_text(f"root:x:0:\nbuild:x:{gid}:\n")
    for d in ("proc", "sys", "dev", "tmp", *MOUNTS):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / _DONE).write_text(f"{exe}\n{sys.version}\n")


__all__ = ["BUILD_USER", "MOUNTS", "PyRoot", "host_python", "make_root", "python_root"]
