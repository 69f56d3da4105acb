"""The files step: the app and model layers, copied from the project as the user meant.

App files land under ``/app`` (``WORKDIR``), root-owned and read-only for the app user;
Python sources are precompiled. Model files get a layer of their own, so a model
update does not re-send the app and an app edit does not re-send the model.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from torchslim.build.layercache import LayerCache
from torchslim.build.plan import APP_ROOT, LOCK_NAME, Plan
from torchslim.build.report import LayerReport
from torchslim.cache import sha256_file
from torchslim.confined import ConfinedRoot, confine, image_path
from torchslim.oci.layer import Layer
from torchslim.slim.pyc import precompile

IGNORED_NAMES = {"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache"}

Files = list[tuple[Path, str]]  # (source on this machine, absolute path in the image)


def app_files(plan: Plan) -> Files:
    """The app's files: everything under ``app`` except the config, lock, models, VCS, caches."""
    cfg = plan.cfg
    app = cfg.app_path.resolve()
    models = {cfg.path(m).resolve() for m in cfg.model}
    skip = models | {cfg.file.resolve(), (cfg.root / LOCK_NAME).resolve()}
    out: Files = []
    rel_app = app.relative_to(cfg.root) if app != cfg.root else Path()
    for path in sorted(app.rglob("*")):
        rel = path.relative_to(app)
        if any(part in IGNORED_NAMES for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink() and path.resolve() not in skip:
            out.append((path, f"{APP_ROOT}/{(rel_app / rel).as_posix()}"))
    return out


def model_files(plan: Plan) -> Files:
    cfg = plan.cfg
    return [(confine(cfg, "model", m), f"{APP_ROOT}/{image_path(m)}") for m in cfg.model]


def files_layer(
    name: str,
    files: Files,
    python_version: str | None,
    mtime: int,
    layers: LayerCache,
) -> tuple[Layer, LayerReport]:
    """Copy ``files``; root-owned, read-only for the app user; ``.py`` precompiled."""
    listing = [(dest, os.stat(src).st_mode & 0o111 != 0, sha256_file(src)) for src, dest in files]
    key = layers.key("files", mtime, name, listing, python_version)

    def fill(root: Path) -> dict[str, Any]:
        staged = ConfinedRoot(root)  # names come from the project: writes cannot leave root
        for src, dest in files:
            staged.copy_file(
                src, dest.lstrip("/"), 0o755 if os.stat(src).st_mode & 0o111 else 0o644
            )
        for d in sorted(p for p in root.rglob("*") if p.is_dir()):
            d.chmod(0o755)
        if python_version is not None:
            precompile(root, APP_ROOT, python_version)
        return {}

    layer, report, _ = layers.get_or_build(name, key, fill, mtime=mtime)
    return layer, report


def service_layers(
    plan: Plan, python_version: str, mtime: int, layers: LayerCache
) -> list[tuple[Layer, LayerReport]]:
    """The app layer and the model layer (each only when it has files)."""
    out = []
    app = app_files(plan)
    if app:
        out.append(files_layer("app", app, python_version, mtime, layers))
    models = model_files(plan)
    if models:
        out.append(files_layer("model", models, None, mtime, layers))
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
