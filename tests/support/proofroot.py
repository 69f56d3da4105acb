"""A small real root filesystem for sandbox and proof tests, made from this host's Python.

The host's interpreter, its standard library and every library ``ldd`` says they need
are hard-linked (copied across file systems) into a directory laid out like an image:
merged /usr, /etc/passwd with uid 1000, /app. Site-packages holds real ELF files
copied from the host: an extension module (``fastjson._json``, a copy of the stdlib's
``_json``) and shared libraries (libz, libssl). No image build, no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
USER = (1000, 1000)
APP_MAIN = """\
import json
from fastjson import _json

app = {"ok": True}
"""
SKIP_STDLIB = {
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "site-packages", "dist-packages", "__phello__",
}  # fmt: skip
_LDD = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_tree(src: Path, dst: Path) -> None:
    """A cheap copy: hard links, so a test that breaks a file must replace it, not edit it."""
    shutil.copytree(src, dst, symlinks=True, copy_function=link_or_copy)


def replace(path: Path, data: bytes) -> None:
    """Give ``path`` new content without touching the inode it may share with the host."""
    path.unlink()
    path.write_bytes(data)


def _put(root: Path, host_path: str) -> None:
    """The file under its own name (a soname link's name) in its directory's real path."""
    real = os.path.realpath(host_path)
    named = os.path.join(os.path.realpath(os.path.dirname(host_path)), os.path.basename(host_path))
    dest = root / named.lstrip("/")
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    link_or_copy(real, dest)


def host_lib(soname: str) -> str | None:
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if os.path.exists(os.path.join(d, soname)):
            return os.path.realpath(os.path.join(d, soname))
    return None


def host_python() -> tuple[str, Path]:
    """The system's python3 (as an image has it) and its stdlib; this one's as a fallback."""
    for exe in ("/usr/bin/python3", os.path.join(sys.base_prefix, "bin", "python3")):
        if os.path.isfile(exe):
            code = "import sysconfig; print(sysconfig.get_paths()['stdlib'])"
            out = subprocess.run([exe, "-c", code], capture_output=True, text=True, check=False)
            if out.returncode == 0:
                return os.path.realpath(exe), Path(out.stdout.strip())
    pytest.skip("no host python3 to build a root from")


def make_root(dest: Path) -> Path:
    """Build the root in ``dest`` (see the module docstring); skips when the host cannot."""
    python, stdlib = host_python()
    dynload = stdlib / "lib-dynload"
    libz, libssl = host_lib("libz.so.1"), host_lib("libssl.so.3")
    if not (dynload.is_dir() and shutil.which("ldd")):
        pytest.skip("needs the host python's lib-dynload and ldd")
    if libz is None or libssl is None:
        pytest.skip("needs libz.so.1 and libssl.so.3 on the host")
    for alias in ("bin", "lib", "lib64", "sbin"):
        (dest / "usr" / alias).mkdir(parents=True, exist_ok=True)
        os.symlink(f"usr/{alias}", dest / alias)
    binaries = [python, *map(str, dynload.glob("*.so")), libssl]
    ldd = subprocess.run(["ldd", *binaries], capture_output=True, text=True, check=False)
    for lib in sorted(set(_LDD.findall(ldd.stdout))):
        _put(dest, lib)
    _put(dest, python)
    if not (dest / "usr/bin/python3").exists():
        os.symlink(python, dest / "usr/bin/python3")
    shutil.copytree(
        stdlib,
        dest / str(stdlib).lstrip("/"),
        symlinks=True,
        copy_function=link_or_copy,
        ignore=lambda d, names: [n for n in names if n in SKIP_STDLIB or n.startswith("config-")],
    )
    site = dest / "usr/local/lib" / stdlib.name / "dist-packages"  # Debian's site dir
    (site / "fastjson").mkdir(parents=True)
    (site / "fastjson/__init__.py").write_text("")
    json_ext = next(dynload.glob("_json.*.so"))
    link_or_copy(json_ext, site / "fastjson" / json_ext.name)
    (site / "vendored").mkdir()
    link_or_copy(libz, site / "vendored/libz.so.1")
    link_or_copy(libssl, site / "vendored/libssl.so.3")
    (dest / "etc").mkdir()
    (dest / "etc/passwd").write_text(
        "root:x:0:0::/root:/sbin/nologin\napp:x:1000:1000::/home/app:/x\n"
    )
    for d in ("proc", "sys", "dev", "tmp", "app/service", "home/app"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "app/service/__init__.py").write_text("")
    (dest / "app/service/main.py").write_text(APP_MAIN)
    return dest


def snapshot(root: Path) -> list[tuple[str, int, int, int]]:
    """Every path under ``root`` with size, mode and mtime: equal before and after a run."""
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            rows.append((os.path.join(dirpath, name), st.st_size, st.st_mode, st.st_mtime_ns))
    return sorted(rows)


def gcc_library(dest: Path, source: str, *link: str) -> Path:
    """Compile a real shared library (skips without gcc)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    src = dest.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(dest), str(src), *link], check=True)
    src.unlink()
    return dest


def processes_with(marker: str) -> list[str]:
    """Pids of this host's processes whose command line holds ``marker`` (what a sandboxed
    command started and should not have left behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            continue
    return found
