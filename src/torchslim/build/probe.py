"""Probe a base image from its files, never by running it.

Each layer is streamed once into the one merged view (``oci.flatten``: whiteouts,
opaque directories, links), as a container runtime would see the filesystem.
Only a handful of small files are kept in memory
(passwd, group, os-release, site.py, pyvenv.cfg, libc6's dpkg status, and
libc.so.6 itself for its version string); everything else is path, type,
size and link target. From that view we answer what the build needs: which
Python and where it installs packages, glibc for manylinux tags, existing
users, a shell, and system CUDA libraries that torch wheels would duplicate.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torchslim.build.interpreter import find_python, search_path
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.flatten import MergedView, Node, PathView, flatten
from torchslim.oci.image import Image
from torchslim.oci.tarstream import Peek

SMALL_FILE_MAX = 8 << 20  # dpkg status of a full distro is a few MB
LIBC_MAX = 64 << 20
SHELLS = ("/bin/sh", "/bin/bash", "/bin/dash", "/bin/busybox")
WORKING_BASES = (
    "debian (the default, `base` unset), python:3.X-slim, pytorch/pytorch:*-runtime, "
    "nvidia/cuda:*-runtime with python3 installed, or gcr.io/distroless/python3"
)

_PY_LIBDIR = re.compile(r"python(\d+\.\d+)$")
_LIBC_VERSION = re.compile(rb"GNU C Library [^\n\x00]*?release version (\d+\.\d+)")
_LIBC_NAME = re.compile(r"(?:libc|ld)-(\d+\.\d+)\.so$")
_LIB_DIR = r"(?:usr/)?lib(?:64|32)?(?:/[a-z0-9_]+-linux-gnu[a-z0-9_]*)?"
_LIBC_PATH = re.compile(rf"^/{_LIB_DIR}/(?:libc\.so\.6|libc-\d+\.\d+\.so)$")
_CUDA_LIB = re.compile(
    r"^lib(?:cudart|cublas|cublasLt|cudnn[a-z_]*|cufft[a-z]*|curand|cusparse|cusparseLt|"
    r"cusolver[a-zA-Z]*|nccl|nvrtc[a-z-]*|nvJitLink|cupti|nvToolsExt|cufile[a-z_]*|nvperf_[a-z]+)"
    r"\.so(?:\.[0-9.]+)?$"
)
_CUDA_DIRS = re.compile(
    rf"^/(?:usr/local/cuda[^/]*/.*|{_LIB_DIR}|opt/conda/(?:envs/[^/]+/)?lib(?:64)?|"
    r"usr/local/nvidia/lib(?:64)?|.+/site-packages/nvidia/[^/]+/lib)/[^/]+$"
)


@dataclass(frozen=True)
class BaseProbe:
    """What the build needs to know about a base image (paths are absolute, in the image)."""

    python_exe: str | None
    python_version: str | None  # "3.11"
    site_packages: str | None  # where `pip install` into this interpreter puts packages
    prefix: str | None  # sys.prefix of that interpreter (the venv for a venv)
    glibc: str | None  # "2.36"; None for musl or no libc
    users: dict[int, tuple[str, str]]  # uid -> (name, home)
    shell: str | None
    cuda_libs: dict[str, int]  # absolute path of each system CUDA library file -> bytes
    os_release: dict[str, str]
    arch: str
    groups: dict[int, str] = field(default_factory=dict)  # gid -> name
    # The files as they are, so a layer that adds a user can write them whole.
    passwd_text: str = ""
    group_text: str = ""
    libs: tuple[str, ...] = ()  # shared libraries (*.so*) under the system lib dirs
    view: MergedView | None = field(default=None, repr=False, compare=False)

    def user_for(self, uid: int) -> str | None:
        """Name of the existing user with ``uid`` (reuse it), or None (one must be added)."""
        entry = self.users.get(uid)
        return entry[0] if entry else None

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists in the merged view (symlinks followed)."""
        return self.view is not None and PathView(self.view, {}).entry(path) is not None

    @property
    def cuda_bytes(self) -> int:
        return sum(self.cuda_libs.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for caching by base digest; the file index is left out."""
        return {
            "python_exe": self.python_exe,
            "python_version": self.python_version,
            "site_packages": self.site_packages,
            "prefix": self.prefix,
            "glibc": self.glibc,
            "users": {str(k): list(v) for k, v in sorted(self.users.items())},
            "groups": {str(k): v for k, v in sorted(self.groups.items())},
            "shell": self.shell,
            "cuda_libs": dict(sorted(self.cuda_libs.items())),
            "os_release": dict(self.os_release),
            "arch": self.arch,
            "passwd_text": self.passwd_text,
            "group_text": self.group_text,
            "libs": list(self.libs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BaseProbe:
        """Inverse of :meth:`to_dict` (without the view: ``exists`` needs a fresh probe)."""

        def opt(key: str) -> str | None:
            v = d.get(key)
            return None if v is None else str(v)

        return cls(
            python_exe=opt("python_exe"),
            python_version=opt("python_version"),
            site_packages=opt("site_packages"),
            prefix=opt("prefix"),
            glibc=opt("glibc"),
            users={int(k): (str(v[0]), str(v[1])) for k, v in dict(d["users"]).items()},
            shell=opt("shell"),
            cuda_libs={str(k): int(v) for k, v in dict(d["cuda_libs"]).items()},
            os_release={str(k): str(v) for k, v in dict(d["os_release"]).items()},
            arch=str(d["arch"]),
            groups={int(k): str(v) for k, v in dict(d.get("groups") or {}).items()},
            passwd_text=str(d.get("passwd_text") or ""),
            group_text=str(d.get("group_text") or ""),
            libs=tuple(str(x) for x in d.get("libs") or ()),
        )


def lib_family(name: str) -> str:
    """``libcublas.so.12.1.3`` → ``libcublas``: the name shared across versions and copies."""
    return posixpath.basename(name).split(".so", 1)[0]


def duplicate_cuda(probe: BaseProbe, wheel_libs: Iterable[str]) -> dict[str, int]:
    """The base's CUDA libraries (path → bytes) of the same family as any of ``wheel_libs``
    (file names or paths the torch / nvidia-* wheels install): bytes the image carries twice."""
    families = {lib_family(n) for n in wheel_libs}
    return {p: n for p, n in sorted(probe.cuda_libs.items()) if lib_family(p) in families}


def require_python(
    probe: BaseProbe, where: str, python: str | None = None, asked: str = "the project"
) -> None:
    """Raise a one-line BuildError when the base has no usable Python (or not ``python``,
    which ``asked`` asks for: "the project", "--python 3.12 (command line)")."""
    if probe.python_exe is None or probe.site_packages is None or probe.python_version is None:
        raise BuildError(
            f"{where}: the base image has no usable Python (no python3 with its standard "
            f"library on PATH or under /usr/local, /opt/conda, /usr); use a base that has one: "
            f"{WORKING_BASES}"
        )
    if python is not None and probe.python_version != python:
        raise BuildError(
            f"{where}: the base image has Python {probe.python_version} ({probe.python_exe}) "
            f"but {asked} asks for {python}; "
            + (
                f'set `python = "{probe.python_version}"`'
                if asked == "the project"
                else f"pass --python {probe.python_version}"
            )
            + " or pick a base with that Python"
        )


# --- reading layers -------------------------------------------------------------------------


def _wanted(path: str) -> int:
    """Byte limit when ``path``'s content must be kept, else 0."""
    base = posixpath.basename(path)
    if path in ("/etc/passwd", "/etc/group", "/etc/os-release", "/usr/lib/os-release"):
        return SMALL_FILE_MAX
    if path == "/var/lib/dpkg/status":
        return SMALL_FILE_MAX
    if path.startswith("/var/lib/dpkg/status.d/") and base.startswith("libc6"):
        return 0 if base.endswith(".md5sums") else SMALL_FILE_MAX
    if base == "site.py" and _PY_LIBDIR.search(posixpath.dirname(path)):
        return SMALL_FILE_MAX
    if base == "pyvenv.cfg" and path.count("/") <= 5:
        return SMALL_FILE_MAX
    if _LIBC_PATH.search(path):
        return LIBC_MAX
    return 0


# --- what the files say ---------------------------------------------------------------------


def _libc_dirs(arch: str) -> list[str]:
    triplet = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "powerpc64le", "s390x": "s390x"}
    t = triplet.get(arch, arch) + "-linux-gnu"
    return [f"/usr/lib/{t}", f"/lib/{t}", "/usr/lib64", "/lib64", "/usr/lib", "/lib"]


def _glibc(view: PathView, arch: str) -> str | None:
    for d in _libc_dirs(arch):
        real = view.resolve(f"{d}/libc.so.6")
        if real is None:
            continue
        m = _LIBC_NAME.search(real)  # libc.so.6 -> libc-2.31.so (glibc < 2.34)
        if m:
            return m[1]
        content = view.read(real)
        if content is not None and (v := _LIBC_VERSION.search(content)):
            return v[1].decode()
    for node in view.view.files():
        path = "/" + node.path
        if _LIBC_PATH.search(path) and (m := _LIBC_NAME.search(path)):
            return m[1]
    return _dpkg_libc6(view)


def _dpkg_libc6(view: PathView) -> str | None:
    texts = [view.text("/var/lib/dpkg/status") or ""]
    texts += [
        view.text(f"/var/lib/dpkg/status.d/{n}") or ""
        for n in view.listdir("/var/lib/dpkg/status.d")
    ]
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Package: libc6\s*$", stanza, re.M):
                v = re.search(r"^Version: (?:\d+:)?(\d+\.\d+)", stanza, re.M)
                if v:
                    return v[1]
    return None


def _passwd(text: str | None) -> dict[int, tuple[str, str]]:
    users: dict[int, tuple[str, str]] = {}
    for line in (text or "").splitlines():
        f = line.split(":")
        if len(f) >= 6 and f[2].isdigit() and not line.startswith(("#", "+", "-")):
            users.setdefault(int(f[2]), (f[0], f[5]))
    return users


def _group(text: str | None) -> dict[int, str]:
    groups: dict[int, str] = {}
    for line in (text or "").splitlines():
        f = line.split(":")
        if len(f) >= 3 and f[2].isdigit() and not line.startswith("#"):
            groups.setdefault(int(f[2]), f[0])
    return groups


def _os_release(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            v = value.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            out[key] = v
    return out


def _cuda_libs(view: MergedView) -> dict[str, int]:
    out = {}
    for node in view.files():
        path = "/" + node.path
        if _CUDA_LIB.match(posixpath.basename(path)) and _CUDA_DIRS.match(path):
            out[path] = node.size
    return dict(sorted(out.items()))


_LIB_PREFIXES = (
    "/usr/lib/",
    "/usr/lib64/",
    "/usr/local/lib/",
    "/lib/",
    "/lib64/",
    "/opt/conda/lib/",
)


def _libs(view: MergedView) -> tuple[str, ...]:
    """Shared-library paths under the library directories (for the build's closure check)."""
    return tuple(
        sorted(
            "/" + p
            for p, n in view.nodes.items()
            if ".so" in posixpath.basename(p)
            and n.kind != "dir"
            and ("/" + p).startswith(_LIB_PREFIXES)
        )
    )


def probe_image(image: Image) -> BaseProbe:
    """Stream every layer of ``image`` once and describe the merged filesystem."""
    data: dict[str, bytes] = {}

    def keep_small(node: Node, peek: Peek) -> None:
        path = "/" + node.path
        limit = _wanted(path)
        data.pop(path, None)
        if limit and node.size <= limit:
            data[path] = peek(node.size)

    try:
        merged = flatten(image, on_file=keep_small)
    except IntegrityError as exc:
        raise IntegrityError(f"base image: {exc}; re-pull or re-create the base image") from exc
    config = image.config()
    arch = str(config.get("architecture") or "")
    view = PathView(merged, data)
    py = find_python(view, search_path(config))
    shell = next((s for s in SHELLS if view.is_file(s)), None)
    return BaseProbe(
        python_exe=py.exe if py else None,
        python_version=py.version if py else None,
        site_packages=py.site if py else None,
        prefix=py.prefix if py else None,
        glibc=_glibc(view, arch),
        users=_passwd(view.text("/etc/passwd")),
        shell=shell,
        cuda_libs=_cuda_libs(merged),
        os_release=_os_release(view.text("/etc/os-release") or view.text("/usr/lib/os-release")),
        arch=arch,
        groups=_group(view.text("/etc/group")),
        passwd_text=view.text("/etc/passwd") or "",
        group_text=view.text("/etc/group") or "",
        libs=_libs(merged),
        view=merged,
    )
