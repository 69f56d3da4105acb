"""Deterministic ``.pyc`` precompilation of the slimmed site-packages.

Invalidation mode: ``UNCHECKED_HASH``. The pyc holds a hash of its source instead of a
timestamp, so it is byte-identical whatever mtimes the staging tree had (layers reset
them anyway), and the import system never re-reads the source to validate it: image files
are immutable and the image sets ``PYTHONDONTWRITEBYTECODE=1``, so a stale pyc cannot
appear and nothing would be rewritten at run time; start-up skips the check entirely.

Compilation always runs in a fresh child interpreter of the *target* Python version, with
no site and ``PYTHONHASHSEED=0``: marshal marks objects by reference count (FLAG_REF), so
its output can depend on what the calling process had loaded; fresh children, each given
a fixed share of the files (every ``SHARDS``-th, whatever the number of cores) in a fixed
walk order, make it reproducible (the fixed seed guards hash-ordered data too).
Code objects get the *image* path (``dfile``), never the staging path.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from torchslim.errors import BuildError

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^3\.\d+$")
# The sources are dealt to this many fresh interpreters, every Nth file to each, run on the
# cores there are: a fixed number, so each file is compiled in the same company (and to
# the same bytes) on a machine of any size.
SHARDS = 4

# Runs inside the target interpreter: walk in sorted order, compile each .py.
_WORKER = r"""
import json, os, py_compile, sys
root, image, shard, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
sources = []
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(
        d for d in dirnames
        if d != "__pycache__" and not os.path.islink(os.path.join(dirpath, d))
    )
    for name in sorted(filenames):
        src = os.path.join(dirpath, name)
        if name.endswith(".py") and not os.path.islink(src):
            sources.append(src)
compiled, failed = 0, []
for src in sources[shard::shards]:
    rel = os.path.relpath(src, root).replace(os.sep, "/")
    try:
        py_compile.compile(
            src, dfile=image + "/" + rel, doraise=True, optimize=0, invalidation_mode=mode
        )
        compiled += 1
    except (py_compile.PyCompileError, OSError):
        failed.append(rel)
print(json.dumps({"compiled": compiled, "failed": failed}))
"""


def _interpreter(python_version: str) -> str | None:
    """An interpreter of exactly ``python_version``: this one, or ``pythonX.Y`` on PATH."""
    host = "{}.{}".format(*sys.version_info[:2])
    if host == python_version:
        return sys.executable
    found = shutil.which(f"python{python_version}")
    if found is None:
        return None
    probe = subprocess.run(
        [found, "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found if probe.returncode == 0 and probe.stdout.strip() == python_version else None


def precompile(root: Path, site_packages: str, python_version: str) -> int:
    """Compile every ``.py`` under ``root + site_packages``; return how many were compiled.

    Without an interpreter of ``python_version`` (host or ``pythonX.Y`` on PATH) this logs
    a warning and returns 0: the image still works, it just compiles on first import.
    Files that do not compile under the target version (e.g. templates named ``.py``) are
    skipped (one info line; pip is silent about them).
    """
    if not _VERSION.match(python_version):
        raise BuildError(f"python version {python_version!r} is not of the form 3.X: fix it")
    image_site = "/" + site_packages.strip("/")
    site = root / image_site.lstrip("/")
    if not site.is_dir():
        raise BuildError(f"site-packages {image_site} not found in staging tree {root}")
    python = _interpreter(python_version)
    if python is None:
        log.warning(
            "no python%s on this host: skipping .pyc precompilation (start-up compiles them)",
            python_version,
        )
        return 0
    env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
    if "PATH" in os.environ:
        env["PATH"] = os.environ["PATH"]

    def shard(number: int) -> subprocess.CompletedProcess[str]:
        argv = [python, "-S", "-s", "-W", "ignore", "-c", _WORKER, str(site), image_site]
        return subprocess.run(
            [*argv, str(number), str(SHARDS)], capture_output=True, text=True, env=env, check=False
        )

    with ThreadPoolExecutor(max_workers=max(1, min(SHARDS, os.cpu_count() or 1))) as pool:
        procs = list(pool.map(shard, range(SHARDS)))
    compiled, failed = 0, []
    for proc in procs:
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise BuildError(f"precompiling {image_site} with {python} failed: {tail[0]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        compiled += int(result["compiled"])
        failed += result["failed"]
    failed.sort()
    if failed:  # upstream's files (torch ships a 3.12-only test helper): pip is silent too
        log.info(
            "%d file(s) do not compile under Python %s and stay source-only, e.g. %s",
            len(failed),
            python_version,
            ", ".join(failed[:3]),
        )
    return compiled
