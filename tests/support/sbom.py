"""A small real root filesystem for SBOM tests, laid out from tests/unit/sbom/data/ (its README
says where each file came from)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "unit" / "sbom" / "data"
SITE = "usr/local/lib/python3.11/dist-packages"
DIGEST = "sha256:" + "ab" * 32
CREATED = "2026-11-23T18:01:13Z"


def make_rootfs(dest: Path) -> Path:
    """``dest`` as an image root: os-release, dpkg status.d, copyright files, dist-infos."""
    (dest / "usr/lib").mkdir(parents=True)
    shutil.copy(DATA / "os-release", dest / "usr/lib/os-release")
    (dest / "etc").mkdir()
    os.symlink("../usr/lib/os-release", dest / "etc/os-release")
    status = dest / "var/lib/dpkg/status.d"
    shutil.copytree(DATA / "status", status)
    docs = dest / "usr/share/doc"
    for f in sorted((DATA / "copyright").iterdir()):
        (docs / f.name).mkdir(parents=True)
        shutil.copy(f, docs / f.name / "copyright")
    os.symlink("libtinfo6", docs / "libncursesw6")  # as ncurses ships it
    shutil.copytree(DATA / "dist", dest / SITE)
    return dest
