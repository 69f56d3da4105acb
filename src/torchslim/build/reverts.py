"""Slimming undone where the proof shows it breaks a file, and remembered for later builds.

When a kept file fails to load (or the entry module fails to import) in the proof, the
Python tree is staged again with a backup of every change slimming makes, and
``slim.restore`` finds which of those changes the failing load needs (a stripped library,
a removed dependency, a removed module). Those changes are not made in the rebuilt layers;
the ledger lists each with the loader's message. The set is stored per wheel set and
profile, so the next build makes the same image without failing first.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torchslim.atomic import write_atomic
from torchslim.build import learned
from torchslim.build.layercache import LayerCache, input_key, staging
from torchslim.build.plan import Plan
from torchslim.build.python import ELF_MACHINE, scheme_for, stub_libraries
from torchslim.cache import BlobStore
from torchslim.config import Steps
from torchslim.debian import RootfsInfo
from torchslim.deps.install import install_wheel
from torchslim.deps.lock import Lock
from torchslim.deps.wheels import fetch_wheels
from torchslim.proof.prove import Failure
from torchslim.slim.apply import slim_tree
from torchslim.slim.backup import Backup, Change
from torchslim.slim.image import ImageView
from torchslim.slim.ledger import Ledger, Revert
from torchslim.slim.owners import package_owners
from torchslim.slim.restore import restore

_NO_MODULE = re.compile(r"no module named '([\w.]+)'", re.IGNORECASE)
MAX_ROUNDS = 3  # prove, undo, prove again: a failure that needs more is not slimming's


def _key(plan: Plan, lock: Lock, rootfs: RootfsInfo) -> str:
    return input_key(
        "reverts",
        sorted(w.sha256 for w in lock.packages),
        plan.profile,
        sorted(plan.keep),
        rootfs.site_packages,
        rootfs.python_exe,
    )


def _revert(d: Any) -> Revert:
    return Revert(str(d["rule"]), str(d["path"]), int(d["bytes"]), str(d["reason"]))


def _reverts(data: list[Any]) -> bool:
    try:
        for d in data:
            _revert(d)
    except (KeyError, TypeError, ValueError):
        return False
    return True


def saved_reverts(layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo) -> list[Revert]:
    """The reverts an earlier proof found for this wheel set and profile (``build.learned``:
    here, or from the registry build cache)."""
    if not plan.slim:
        return []
    data = learned.read(layers, "reverts", _key(plan, lock, rootfs), _reverts)
    return [_revert(d) for d in data or ()]


def save_reverts(
    layers: LayerCache, plan: Plan, lock: Lock, rootfs: RootfsInfo, reverts: Sequence[Revert]
) -> None:
    data = [r.__dict__ for r in sorted(reverts, key=lambda r: r.path)]
    learned.write(layers, "reverts", _key(plan, lock, rootfs), data)


def _examined_path(plan: Plan, lock: Lock, rootfs: RootfsInfo) -> Path:
    return learned.path("reverts", _key(plan, lock, rootfs)).with_suffix(".examined.json")


def examined(plan: Plan, lock: Lock, rootfs: RootfsInfo) -> set[str]:
    """Files that fail alone which an earlier build already searched for slimming's part
    (they fail unslimmed too: scipy's ``_matfuncs_sqrtm_triu``): not searched again."""
    try:
        data = json.loads(_examined_path(plan, lock, rootfs).read_text())
        return {str(x) for x in data} if isinstance(data, list) else set()
    except (OSError, ValueError):
        return set()


def save_examined(plan: Plan, lock: Lock, rootfs: RootfsInfo, subjects: set[str]) -> None:
    write_atomic(_examined_path(plan, lock, rootfs), json.dumps(sorted(subjects), indent=1))


def may_be_slimming(failure: Failure) -> bool:
    """Whether undoing slimming could fix ``failure``: a file that did not load, or a module
    that is missing (slimming removes files and modules, nothing else)."""
    if failure.check in ("library", "extension", "torch"):
        return True
    return failure.check in ("entry", "serve") and _NO_MODULE.search(failure.message) is not None


def _suspects(
    failures: Sequence[Failure], root: Path, site: str, changed: Sequence[str]
) -> dict[str, str]:
    """Image paths whose loading failed (or whose absence did), with the message.

    ``changed``: the paths slimming changed; a module that is missing brings back every
    changed file of its package.
    """
    out: dict[str, str] = {}
    for f in failures:
        if f.check in ("library", "extension") and f.subject.startswith(site + "/"):
            out[f.subject] = f.message
        elif f.check == "torch":
            for c in sorted((root / site.lstrip("/") / "torch").glob("_C*.so")):
                out[posixpath.join(site, "torch", c.name)] = f.message
        m = _NO_MODULE.search(f.message)
        if m and f.check in ("entry", "serve", "extension", "torch"):
            base = posixpath.join(site, *m[1].split("."))
            for path in changed:
                if path == base + ".py" or path.startswith(base + "/"):
                    out[path] = f.message
    return out


@contextlib.contextmanager
def _slimmed(
    plan: Plan,
    lock: Lock,
    rootfs: RootfsInfo,
    known: Sequence[Revert],
    store: BlobStore,
    steps: Steps,
) -> Iterator[tuple[Path, Path, Ledger]]:
    """The wheels installed and slimmed in staging, every change backed up: the root, the
    backup folder and the ledger."""
    scheme = scheme_for(rootfs)
    paths = fetch_wheels(lock, store, plan.settings, steps.progress)
    keep = [*plan.keep, *(r.path for r in known)]
    with staging("revert") as root, staging("backup") as work:
        for w in lock.packages:
            install_wheel(paths[w.name], root, scheme, rootfs.python_exe)
        backup = work / "backup"
        ledger = Ledger()
        slim_tree(
            root, rootfs.site_packages, profile=plan.profile, keep=keep, ledger=ledger,
            backup=backup,
        )  # fmt: skip
        yield root, backup, ledger


def slimming_changes(
    plan: Plan,
    lock: Lock,
    rootfs: RootfsInfo,
    known: Sequence[Revert],
    store: BlobStore,
    steps: Steps,
    reason: str,
    *,
    dirs: set[str],
    packages: set[str],
) -> list[Revert]:
    """The changes slimming makes (beyond ``known``) below the site-packages folders
    ``dirs`` and those of the distributions ``packages`` (lower-case names), as reverts
    with ``reason``, in package, rule, path order."""
    site = rootfs.site_packages.rstrip("/") + "/"

    def top(path: str) -> str:
        return path.removeprefix(site).split("/")[0] if path.startswith(site) else ""

    with _slimmed(plan, lock, rootfs, known, store, steps) as (root, backup, _ledger):
        owners = package_owners(ImageView([(root, "/")]))
        wanted = set(dirs) | {
            top(path) for path, owner in owners.items() if owner.split()[0].lower() in packages
        }
        wanted.discard("")
        changes = [c for c in Backup.load(backup).changes.values() if top(c.path) in wanted]

    def order(c: Change) -> tuple[str, str, str]:
        return (top(c.path), c.rule, c.path)

    return [Revert(c.rule, c.path, c.bytes, reason) for c in sorted(changes, key=order)]


def find_reverts(
    plan: Plan,
    lock: Lock,
    rootfs: RootfsInfo,
    base_libs: Sequence[str],
    failures: Sequence[Failure],
    known: Sequence[Revert],
    store: BlobStore,
    steps: Steps,
) -> list[Revert]:
    """The slimming changes the failing loads need undone (none: slimming is not the cause)."""
    if not any(may_be_slimming(f) for f in failures):
        return []  # e.g. the entry raised, cmd is not on PATH, smoke failed: nothing to undo
    steps.step("Some files did not load: finding which slimming changes they need, if any")
    with (
        _slimmed(plan, lock, rootfs, known, store, steps) as (root, backup, ledger),
        staging("libs") as stub,
    ):
        stub_libraries(stub, base_libs)
        changed = sorted(Backup.load(backup).changes)
        suspects = _suspects(failures, root, rootfs.site_packages, changed)
        restored = restore(
            root,
            backup,
            sorted(suspects),
            ledger,
            suspects,
            trees=[(stub, "/")],
            interpreter=rootfs.python_exe,
            machine=ELF_MACHINE.get(plan.platform.arch, "EM_X86_64"),
        )
    return [Revert(r.change.rule, r.change.path, r.change.bytes, r.reason) for r in restored]
