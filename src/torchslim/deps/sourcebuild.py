"""Build an sdist or a local project into a wheel, in the sandbox, never on the host.

Building is running the project's code (``setup.py``, a build backend). It happens in
:func:`torchslim.sandbox.run.run_in_root` over a root made of this host's Python
(:mod:`torchslim.sandbox.pyroot`): an unprivileged subordinate uid, a read-only root, no
network but loopback, a fresh bounded ``/tmp``, and an environment of ``PATH``,
``HOME=/tmp``, ``LANG`` and ``SOURCE_DATE_EPOCH`` only. The source is bound read-only at
``/src`` (copied to ``/tmp/src`` inside, since backends write next to it), the build
requirements at ``/build`` and an empty folder at ``/out``, the only place the build can
leave anything.

The build requirements are read from ``pyproject.toml`` as text (PEP 518's defaults when
it has none), resolved by uv as wheels only, fetched hash-checked and installed with
``installer`` on the host: no code of theirs runs here either. A tiny PEP 517 frontend
inside imports the backend and calls ``build_wheel('/out')``. Only a ``py3-none-any``
wheel is accepted; it is kept in the cache, named by its own sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from torchslim.atomic import atomic_path
from torchslim.cache import BlobStore, cache_root
from torchslim.deps.install import Scheme, install_wheel
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import ResolveError
from torchslim.sandbox.pyroot import BUILD_USER, PyRoot, python_root
from torchslim.sandbox.run import Bind, Limits, run_in_root, sandbox_available

if TYPE_CHECKING:
    from torchslim.deps.pylock import Target

DEFAULT_REQUIRES = ("setuptools>=40.8.0",)
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the oldest a zip holds: reproducible wheels
BUILD_TIMEOUT = 600.0
MAX_WHEEL = 512 << 20
MAX_UNPACKED = 2 << 30
LIMITS = Limits(tmp_bytes=2 << 30, max_procs=512, max_memory=8 << 30)
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
_BUILT, _MISSING = "torchslim-built:", "torchslim-missing:"

# Runs inside the sandbox as ``python3 -I -c FRONTEND SPEC``: PEP 517's build_wheel.
FRONTEND = """
import importlib, importlib.metadata, json, os, re, shutil, sys
spec = json.loads(sys.argv[1])
sys.path[:0] = ["/build/site"]
shutil.copytree("/src", "/tmp/src", symlinks=True)
os.chdir("/tmp/src")
sys.path[:0] = [os.path.join("/tmp/src", p) for p in spec["backend_path"]]
module, _, attrs = spec["backend"].partition(":")
backend = importlib.import_module(module)
for attr in filter(None, attrs.split(".")):
    backend = getattr(backend, attr)
missing = []
for req in getattr(backend, "get_requires_for_build_wheel", lambda: [])():
    name = re.match(r"[A-Za-z0-9._-]+", req)
    try:
        importlib.metadata.distribution(name.group(0) if name else req)
    except importlib.metadata.PackageNotFoundError:
        missing.append(req)
if missing and not spec["retry"]:
    print("%s%s" % (spec["missing"], json.dumps(missing)))
    sys.exit(3)
print("%s%s" % (spec["built"], backend.build_wheel("/out")))
"""


class BuildRefused(ResolveError):
    """A build that cannot run or whose result cannot go into the image."""


def build_system(src: Path) -> tuple[list[str], str, list[str]]:
    """``[build-system]`` of ``src/pyproject.toml``, read as text: requires, backend and
    backend-path (PEP 517/518 defaults where it is absent)."""
    try:
        data = tomllib.loads((src / "pyproject.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildRefused(f"{src.name}: cannot read pyproject.toml ({exc})") from None
    table = data.get("build-system", {})
    if not isinstance(table, dict):
        table = {}
    requires = table.get("requires", list(DEFAULT_REQUIRES))
    backend = table.get("build-backend", DEFAULT_BACKEND)
    paths = table.get("backend-path", [])
    if not (isinstance(requires, list) and all(isinstance(r, str) for r in requires)):
        raise BuildRefused(f"{src.name}: [build-system].requires must be a list of strings")
    if not isinstance(backend, str) or not isinstance(paths, list):
        raise BuildRefused(f"{src.name}: [build-system] has an invalid build-backend")
    return requires, backend, [str(p) for p in paths]


def host_target() -> Target:
    """The platform the build runs on: this host's Python, CPU and glibc."""
    from torchslim.deps.pylock import Target

    libc, version = platform.libc_ver()
    return Target(
        python=f"{sys.version_info[0]}.{sys.version_info[1]}",
        arch=platform.machine(),
        glibc=version if libc == "glibc" and version else "2.17",
    )


def build_env(requires: Sequence[str], settings: IndexSettings) -> Path:
    """A folder holding ``site/`` with ``requires`` installed from wheels only, cached by
    the wheels' digests (bound at ``/build`` in the sandbox)."""
    from torchslim.deps.lock import lock_wheels_only
    from torchslim.deps.wheels import fetch_wheels

    with tempfile.TemporaryDirectory(prefix="torchslim-buildreq-") as tmpd:
        lock = lock_wheels_only(list(requires), host_target(), settings, Path(tmpd))
    key = hashlib.sha256("\n".join(sorted(w.digest for w in lock.packages)).encode()).hexdigest()
    dest = cache_root() / "build-envs" / key[:32]
    if (dest / "site").is_dir():
        return dest
    wheels = fetch_wheels(lock, BlobStore(), settings)
    scheme = Scheme("/site", "/site", "/bin", "/data", "/include/<name>")
    with atomic_path(dest) as tmp:
        (tmp / "site").mkdir(parents=True)
        for _name, wheel in sorted(wheels.items()):
            install_wheel(wheel, tmp, scheme, "/usr/bin/python3")
    return dest


def unpack_sdist(archive: Path, dest: Path) -> Path:
    """Extract an sdist (``.tar.gz``, ``.tar.bz2``, ``.zip``…) confined to ``dest``: no
    absolute names, ``..``, links out or devices. Returns its project folder."""
    what = archive.name
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_names(what, [i.filename for i in infos], sum(i.file_size for i in infos))
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_names(what, [m.name for m in members], sum(m.size for m in members))
                for m in members:
                    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                        raise BuildRefused(f"{what}: {m.name!r} is a device or fifo; refused")
                tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise BuildRefused(f"{what}: not a readable sdist ({exc})") from None
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def _check_names(what: str, names: list[str], size: int) -> None:
    if size > MAX_UNPACKED:
        raise BuildRefused(f"{what}: unpacks to more than {MAX_UNPACKED >> 30} GiB; refused")
    for name in names:
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or ".." in parts:
            raise BuildRefused(f"{what}: member {name!r} leaves the sdist's folder; refused")


def build_in_sandbox(
    src: Path, what: str, settings: IndexSettings, *, expect: str | None = None
) -> Path:
    """Build the project in ``src`` into a pure wheel in the sandbox; its path in the cache.

    ``what`` names it in messages (``evil 1.0``, ``./evil``); ``expect`` is the project
    name the wheel must have (an sdist's)."""
    reason = sandbox_available()
    if reason is not None:
        raise BuildRefused(
            f"{what} must be built from source, and builds run only in the sandbox, which "
            f"cannot run here: {reason}"
        )
    requires, backend, paths = build_system(src)
    root = python_root()
    with tempfile.TemporaryDirectory(prefix="torchslim-build-") as tmpd:
        out = Path(tmpd) / "out"
        out.mkdir()
        env = build_env(requires, settings)
        result = _run_frontend(root, src, env, out, backend, paths, retry=False)
        missing = _marked(result.stdout, _MISSING)
        if result.returncode == 3 and missing is not None:
            extra = json.loads(missing)
            env = build_env([*requires, *(str(x) for x in extra)], settings)
            result = _run_frontend(root, src, env, out, backend, paths, retry=True)
        if result.returncode != 0 or _marked(result.stdout, _BUILT) is None:
            raise BuildRefused(
                f"{what}: building it in the sandbox failed ({result.exit_text()}: "
                f"{result.tail(3) or 'no output'}); the sandbox has no compilers and no "
                "network, so only pure-Python projects build there: build a wheel for the "
                "target and add it to find-links, or pin a version that ships wheels"
            )
        return _keep_wheel(out, what, expect)


def _run_frontend(
    root: PyRoot, src: Path, env: Path, out: Path, backend: str, paths: list[str], *, retry: bool
) -> Any:
    spec = {
        "backend": backend,
        "backend_path": paths,
        "retry": retry,
        "built": _BUILT,
        "missing": _MISSING,
    }
    return run_in_root(
        root.path,
        [root.python, "-I", "-c", FRONTEND, json.dumps(spec)],
        env={**_ENV, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
        user=BUILD_USER,
        cwd="/tmp",
        timeout=BUILD_TIMEOUT,
        binds=[Bind(src, "/src"), Bind(env, "/build"), Bind(out, "/out", writable=True)],
        limits=LIMITS,
    )


def _marked(stdout: str, mark: str) -> str | None:
    return next((ln[len(mark) :] for ln in stdout.splitlines() if ln.startswith(mark)), None)


def _keep_wheel(out: Path, what: str, expect: str | None) -> Path:
    """The one regular ``.whl`` the build left in ``out``, checked, copied into the cache."""
    wheels = [p for p in out.iterdir() if p.name.endswith(".whl")]
    compiled = (
        f"{what} builds a wheel with compiled code, which needs the target's compilers: build "
        "a wheel for the target and add it to find-links, or pin a version that ships wheels"
    )
    if len(wheels) != 1:
        raise BuildRefused(f"{what}: the build left {len(wheels)} wheels, not one; refused")
    try:
        name, _version, _build, tags = parse_wheel_filename(wheels[0].name)
    except InvalidWheelFilename:
        raise BuildRefused(f"{what}: the build left an invalid wheel name; refused") from None
    if expect is not None and name != canonicalize_name(expect):
        raise BuildRefused(f"{what}: the build made a wheel of {name}, not {expect}; refused")
    if not any(t.interpreter.startswith("py3") and (t.abi, t.platform) == ("none", "any")
               for t in tags):  # fmt: skip
        raise BuildRefused(compiled)
    data = _read_regular(wheels[0], what)
    digest = hashlib.sha256(data).hexdigest()
    keep = cache_root() / "built-wheels" / digest[:32] / wheels[0].name
    if not keep.is_file() or hashlib.sha256(keep.read_bytes()).hexdigest() != digest:
        with atomic_path(keep) as tmp:
            tmp.write_bytes(data)
    return keep


def _read_regular(path: Path, what: str) -> bytes:
    """A file the sandbox wrote: never through a link, and bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise BuildRefused(f"{what}: the built wheel is not a regular file; refused") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_WHEEL:
            raise BuildRefused(f"{what}: the built wheel is not a regular file under 512 MiB")
        return f.read()


__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_REQUIRES",
    "BuildRefused",
    "build_env",
    "build_in_sandbox",
    "build_system",
    "host_target",
    "unpack_sdist",
]
