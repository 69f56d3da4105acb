"""Real base trees for the probe tests (imported by conftest.py and the tests).

Each tree copies a real base's layout with real host files, kept small:
the host is Debian bookworm (glibc 2.36, dash, Python 3.11) with pyenv's
CPython 3.11.7 under /root/.pyenv. Executables are the real ELF files;
only the standard library is cut down to the files the probe reads
(os.py marks a stdlib, site.py says where packages go).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TRIPLET = "usr/lib/x86_64-linux-gnu"
HOST_LIBC = Path(f"/{TRIPLET}/libc.so.6")
HOST_DASH = Path("/usr/bin/dash")
HOST_DEBIAN_STDLIB = Path("/usr/lib/python3.11")
PYENV = Path("/root/.pyenv/versions/3.11.7")
# A real ELF shared library, copied under CUDA names: CUDA itself is not on this host.
HOST_ELF = Path(f"/{TRIPLET}/libz.so.1").resolve()

PASSWD_ROOT = "root:x:0:0:root:/root:/bin/sh\n"
PASSWD_APP = PASSWD_ROOT + "app:x:1000:1000:app:/home/app:/sbin/nologin\n"
GROUP_APP = "root:x:0:\napp:x:1000:\n"
DEBIAN_OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nID=debian\n'
)


def need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"host file(s) missing for a real tree: {', '.join(missing)}")


def write(path: Path, text: str | bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(mode)
    return path


def copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    shutil.copymode(src, dest)
    return dest


def link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def debian_tree(root: Path, *, libc: bool = True, dpkg: bool = True) -> Path:
    """The layout of torchslim's own Debian base (merged /usr, Debian's python3.11, no shell)."""
    need(HOST_LIBC, PYENV / "bin/python3.11", HOST_DEBIAN_STDLIB / "site.py")
    for d in ("bin", "lib", "sbin", "lib64"):
        link(root / d, f"usr/{d}")
    copy(PYENV / "bin/python3.11", root / "usr/bin/python3.11")  # a real ELF, small
    link(root / "usr/bin/python3", "python3.11")
    copy(HOST_DEBIAN_STDLIB / "os.py", root / "usr/lib/python3.11/os.py")
    copy(HOST_DEBIAN_STDLIB / "site.py", root / "usr/lib/python3.11/site.py")  # patched
    (root / "usr/local/lib/python3.11/dist-packages").mkdir(parents=True)
    if libc:
        copy(HOST_LIBC, root / TRIPLET / "libc.so.6")
    if dpkg:
        write(
            root / "var/lib/dpkg/status.d/libc6",
            "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u7\n",
        )
    write(root / "etc/passwd", PASSWD_APP)
    write(root / "etc/group", GROUP_APP)
    write(root / "usr/lib/os-release", DEBIAN_OS_RELEASE)
    link(root / "etc/os-release", "../usr/lib/os-release")
    (root / "home/app").mkdir(parents=True)
    return root


def slim_tree(root: Path) -> Path:
    """python:3.11-slim: python.org CPython under /usr/local on Debian, dash as /bin/sh."""
    need(HOST_LIBC, HOST_DASH, PYENV / "bin/python3.11", PYENV / "lib/python3.11/site.py")
    for d in ("bin", "lib", "sbin", "lib64"):
        link(root / d, f"usr/{d}")
    copy(HOST_DASH, root / "usr/bin/dash")
    link(root / "usr/bin/sh", "dash")
    copy(HOST_LIBC, root / TRIPLET / "libc.so.6")
    local = root / "usr/local"
    copy(PYENV / "bin/python3.11", local / "bin/python3.11")
    link(local / "bin/python3", "python3.11")
    link(local / "bin/python", "python3")
    for name in ("os.py", "site.py"):
        copy(PYENV / "lib/python3.11" / name, local / "lib/python3.11" / name)
    (local / "lib/python3.11/site-packages").mkdir()
    write(root / "etc/passwd", PASSWD_ROOT)
    write(root / "etc/group", "root:x:0:\n")
    write(root / "usr/lib/os-release", DEBIAN_OS_RELEASE)
    link(root / "etc/os-release", "../usr/lib/os-release")
    return root


def conda_tree(root: Path) -> Path:
    """pytorch/pytorch:*-runtime style: /opt/conda, an Ubuntu-ish system, a CUDA toolkit dir."""
    need(HOST_LIBC, HOST_DASH, PYENV / "bin/python3.11", HOST_ELF)
    copy(HOST_DASH, root / "bin/dash")  # not merged-/usr, like older Ubuntu bases
    link(root / "bin/sh", "dash")
    copy(HOST_LIBC, root / "lib/x86_64-linux-gnu/libc.so.6")
    conda = root / "opt/conda"
    copy(PYENV / "bin/python3.11", conda / "bin/python3.11")
    link(conda / "bin/python", "python3.11")
    link(conda / "bin/python3", "python3.11")
    for name in ("os.py", "site.py"):
        copy(PYENV / "lib/python3.11" / name, conda / "lib/python3.11" / name)
    (conda / "lib/python3.11/site-packages").mkdir()
    write(conda / "conda-meta/python-3.11.7-h955ad1f_0.json", '{"name": "python"}\n')
    # CUDA stand-ins: a real ELF file from the host (libz) under CUDA library names.
    cuda = root / "usr/local/cuda-12.1/lib64"
    copy(HOST_ELF, cuda / "libcublas.so.12")
    link(cuda / "libcublas.so", "libcublas.so.12")  # symlinks carry no bytes
    copy(HOST_ELF, conda / "lib/libcudart.so.12")
    copy(HOST_ELF, conda / "lib/libz.so.1")  # not a CUDA library
    link(root / "usr/local/cuda", "cuda-12.1")
    write(root / "etc/passwd", PASSWD_ROOT)
    write(root / "etc/os-release", 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n')
    return root
