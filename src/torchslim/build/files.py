"""The files step: the app and model layers, copied from the project as the user meant.

App files land under ``/app`` (``WORKDIR``), root-owned and read-only for the app user;
Python sources are precompiled. Model files get a layer of their own, so a model
update does not re-send the app and an app edit does not re-send the model.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchslim.build.layercache import LayerCache
from torchslim.build.plan import APP_ROOT, Files, Plan
from torchslim.build.report import LayerReport
from torchslim.cache import sha256_file
from torchslim.confined import ConfinedRoot
from torchslim.oci.layer import Layer, Ownership
from torchslim.slim.pyc import precompile


def files_layer(
    name: str,
    files: Files,
    python_version: str | None,
    mtime: int,
    layers: LayerCache,
    writable: Sequence[str] = (),
) -> list[tuple[Layer, LayerReport]]:
    """Copy ``files``; root-owned, read-only for the app user; ``.py`` precompiled.
    One layer, or its parts when it is over ``layerparts``' limits.

    ``writable``: directories made empty and owned by the app user (the ``writable`` key).
    """
    listing = [(dest, os.stat(src).st_mode & 0o111 != 0, sha256_file(src)) for src, dest in files]
    key = layers.key("files", mtime, name, listing, python_version, sorted(writable))
    uid = layers.uid
    owner = Ownership(overrides={w.strip("/"): (uid, uid) for w in writable})

    def fill(root: Path) -> dict[str, Any]:
        staged = ConfinedRoot(root)  # names come from the project: writes cannot leave root
        for w in writable:
            staged.mkdir(w.strip("/"))
        for src, dest in files:
            staged.copy_file(
                src, dest.lstrip("/"), 0o755 if os.stat(src).st_mode & 0o111 else 0o644
            )
        for d in sorted(p for p in root.rglob("*") if p.is_dir()):
            d.chmod(0o755)
        if python_version is not None:
            precompile(root, APP_ROOT, python_version)
        return {}

    return layers.get_or_build_parts(name, key, fill, mtime=mtime, owner=owner)


def service_layers(
    plan: Plan, python_version: str, mtime: int, layers: LayerCache
) -> list[tuple[Layer, LayerReport]]:
    """The app layer (app files and single ``files``) and the model layer, when not empty."""
    out = []
    app = (*plan.app_files, *plan.extra_files)
    writable = plan.cfg.writable
    if app or writable:
        out.extend(files_layer("app", app, python_version, mtime, layers, writable))
    if plan.model_files:
        out.extend(files_layer("model", plan.model_files, None, mtime, layers))
    return out


def git_revision(root: Path) -> str | None:
    """The project's git HEAD, for the image's revision label; None outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev else None
