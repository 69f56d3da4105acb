"""Find a base image's Python from its files: the interpreter, its version and prefix, and
the site-packages directory ``pip install`` into it would use (a venv's, conda's, Debian's
``dist-packages``, ``/usr/local``'s), as CPython itself would work them out.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from torchslim.oci.flatten import PathView

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where Python usually lives when PATH (from the image config) does not say.
FALLBACK_BIN_DIRS = ("/opt/conda/bin", "/usr/local/bin", "/usr/bin", "/bin")

_PY_NAME = re.compile(r"python(\d+\.\d+)$")
_PY_LIBDIR = re.compile(r"python(\d+\.\d+)$")


@dataclass(frozen=True)
class Interpreter:
    exe: str
    version: str
    prefix: str
    site: str


def _lib_version(view: PathView, prefix: str, hint: str | None) -> str | None:
    """The X.Y whose stdlib (lib/pythonX.Y/os.py) is under ``prefix``; ``hint`` first."""
    found: list[str] = []
    for libdir in ("lib", "lib64"):
        for name in view.listdir(f"{prefix}/{libdir}"):
            m = _PY_LIBDIR.match(name)
            if m and view.is_file(f"{prefix}/{libdir}/{name}/os.py"):
                found.append(m[1])
    if hint is not None:
        return hint if hint in found else None
    if not found:
        return None
    return max(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def _stdlib_dir(view: PathView, prefix: str, version: str) -> str:
    for libdir in ("lib", "lib64"):
        d = f"{prefix}/{libdir}/python{version}"
        if view.is_file(f"{d}/os.py"):
            return d
    return f"{prefix}/lib/python{version}"


def _cfg(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _venv(view: PathView, candidate: str) -> Interpreter | None:
    """A venv: pyvenv.cfg next to or above the executable, as CPython looks for it."""
    bindir = posixpath.dirname(candidate)
    for cfg_path in (f"{bindir}/pyvenv.cfg", f"{posixpath.dirname(bindir)}/pyvenv.cfg"):
        text = view.text(cfg_path)
        if text is None:
            continue
        cfg = _cfg(text)
        venv = posixpath.dirname(cfg_path)
        version = None
        for key in ("version_info", "version"):
            m = re.match(r"(\d+\.\d+)", cfg.get(key, ""))
            if m:
                version = m[1]
                break
        real = view.resolve(candidate)
        if version is None and real:
            m = _PY_NAME.search(posixpath.basename(real))
            version = m[1] if m else None
        home = cfg.get("home", "")
        base = posixpath.dirname(home.rstrip("/")) if home else ""
        if version is None and base:
            version = _lib_version(view, base, None)
        if version is None or real is None or not view.is_file(real):
            return None
        if base and _lib_version(view, base, version) is None:
            return None  # the base interpreter's stdlib is missing
        exe = f"{venv}/bin/python{version}"
        return Interpreter(
            exe if view.is_file(exe) else candidate,
            version,
            venv,
            f"{venv}/lib/python{version}/site-packages",
        )
    return None


def _system_python(view: PathView, candidate: str) -> Interpreter | None:
    real = view.resolve(candidate)
    if real is None or not view.is_file(real):
        return None
    bindir = posixpath.dirname(real)
    if posixpath.basename(bindir) != "bin":
        return None
    prefix = posixpath.dirname(bindir)
    m = _PY_NAME.search(posixpath.basename(real))
    version = _lib_version(view, prefix, m[1] if m else None)
    if version is None or not version.startswith("3."):
        return None
    stdlib = _stdlib_dir(view, prefix, version)
    site_py = view.text(f"{stdlib}/site.py") or ""
    if view.is_dir(f"{prefix}/conda-meta"):
        site = f"{prefix}/lib/python{version}/site-packages"
    elif "dist-packages" in site_py:
        # Debian's patched site.py: pip installs to <prefix>/local/lib/pythonX.Y/dist-packages.
        site = f"{prefix.rstrip('/')}/local/lib/python{version}/dist-packages"
        if prefix == "/usr/local":
            site = f"/usr/local/lib/python{version}/dist-packages"
    else:
        site = f"{prefix}/lib/python{version}/site-packages"
    return Interpreter(real, version, prefix, site)


def search_path(config: Mapping[str, object]) -> list[str]:
    inner = config.get("config")
    env = inner.get("Env") if isinstance(inner, dict) else None
    path = DEFAULT_PATH
    for item in env if isinstance(env, list) else []:
        if isinstance(item, str) and item.startswith("PATH="):
            path = item[5:]
    dirs = [d for d in path.split(":") if d.startswith("/")]
    return list(dict.fromkeys([*dirs, *FALLBACK_BIN_DIRS]))


def find_python(view: PathView, bindirs: list[str]) -> Interpreter | None:
    for d in bindirs:
        names = ["python3", "python"]
        names += sorted(
            (n for n in view.listdir(d) if _PY_NAME.fullmatch(n)),
            key=lambda n: tuple(int(x) for x in n[6:].split(".")),
            reverse=True,
        )
        for name in names:
            candidate = f"{d.rstrip('/')}/{name}"
            if view.entry(candidate) is None:
                continue
            found = _venv(view, candidate) or _system_python(view, candidate)
            if found is not None:
                return found
    return None
