"""Real wheels for the slim tests: found in the local indexes or downloaded once.

Wheels are looked up in ``~/.cache/torchslim-test-wheels`` (or ``$TORCHSLIM_TEST_WHEELS``),
then the local file indexes (``/opt/pypi*/files``), and otherwise fetched with
``pip download --no-deps --only-binary :all:`` for CPython 3.11 on manylinux x86-64 into
the cache. Tests using them are marked ``network``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from support.slim import SITE, SYSTEM_PYTHON, unzip

CACHE = Path(os.environ.get("TORCHSLIM_TEST_WHEELS", Path.home() / ".cache/torchslim-test-wheels"))
LOCAL = (Path("/opt/pypi/files"), Path("/opt/pypi-more/files"), Path("/opt/wheels"))
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
SYS = "/usr/lib/x86_64-linux-gnu"


def _find(name: str, version: str, dirs: tuple[Path, ...]) -> Path | None:
    for d in dirs:
        for w in sorted(d.glob("*.whl")) if d.is_dir() else []:
            try:
                wname, wversion, _, tags = parse_wheel_filename(w.name)
            except InvalidWheelFilename:
                continue
            if wname != canonicalize_name(name) or str(wversion) != version:
                continue
            if any(
                t.interpreter in ("cp311", "cp37") and t.platform.endswith("x86_64") for t in tags
            ):
                return w
    return None


def wheel(name: str, version: str) -> Path:
    """The path of ``name==version`` for CPython 3.11 manylinux x86-64."""
    found = _find(name, version, (CACHE, *LOCAL))
    if found is not None:
        return found
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    cmd += ["--python-version", "3.11", "-d", str(CACHE)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    proc = subprocess.run([*cmd, f"{name}=={version}"], capture_output=True, text=True)
    found = _find(name, version, (CACHE,))
    if proc.returncode != 0 or found is None:
        pytest.skip(f"cannot download {name}=={version}: {proc.stderr.strip()[-300:]}")
    return found


def install(root: Path, *wheels: Path) -> Path:
    """Unpack wheels into ``root`` + SITE (the files and RECORD a wheel install writes)."""
    site = root / SITE.lstrip("/")
    for w in wheels:
        unzip(w, site, lambda _: True)
    return site


def system_tree() -> tuple[Path, str]:
    if not Path(SYS, "libc.so.6").exists():
        pytest.skip(f"{SYS} not present")
    return Path(SYS), SYS


def python_in(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the host CPython 3.11 and only ``site`` on its path."""
    python = SYSTEM_PYTHON if SYSTEM_PYTHON.exists() else Path(sys.executable)
    return subprocess.run(
        [str(python), "-s", "-c", code],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site.resolve())},
        check=False,
    )
