"""The proof's root: the image's layers as one directory, laid out in milliseconds.

The layers below the top two (app and model) are merged once into a kept root, keyed by
their digests. A proof then works in a hard-linked copy of it that is kept too and reused:
the last proof's additions are removed, the new top layers laid in. A warm rebuild after
an app edit so links a few files instead of copying 13,000 links (``cp -al``, ~1 s).

The copy is reused only when the top layers (and the runtime's own mountpoints: the
working directory, ``/etc/hosts``) add paths and never replace or hide one of the kept
root's, so removing the additions is the whole reset. Anything else, or a copy another
build holds, falls back to a fresh ``cp -al`` copy in the build's scratch folder. The
proof mounts its root read-only, so nothing it runs can change the shared files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from torchslim.atomic import write_atomic
from torchslim.cache import cache_root
from torchslim.oci.flatten import WH_PREFIX
from torchslim.oci.image import Image
from torchslim.oci.unpack import lay_trees, merge_trees

TOP_LAYERS = 2  # app and model: what a rebuild changes most; the layers below are kept
ROOTS_FORMAT = 2


@contextlib.contextmanager
def proof_root(
    image: Image, trees: Sequence[Path], scratch: Path, *, workdir: str
) -> Iterator[Path]:
    """The image's root (as a runtime would see it: ``workdir`` made, ``/etc/hosts``
    present), for as long as the ``with`` lasts."""
    if len(trees) <= TOP_LAYERS or shutil.which("cp") is None:
        yield _mountpoints(merge_trees(list(trees), scratch / "root"), workdir)
        return
    kept = _kept(image, trees)
    top = list(trees[-TOP_LAYERS:])
    extras = [workdir.strip("/"), "etc/hosts"]
    changes = _additions(kept, top, extras)
    with _locked_copy(kept, changes) as work:
        if work is None:
            yield _mountpoints(merge_trees(top, scratch / "root", onto=kept), workdir)
            return
        lay_trees(top, work)
        yield _mountpoints(work, workdir)


def _kept(image: Image, trees: Sequence[Path]) -> Path:
    """The layers below the top two, merged once (another build may make it at once)."""
    below = [layer.digest for layer in image.layers()[:-TOP_LAYERS]]
    key = hashlib.sha256(json.dumps([ROOTS_FORMAT, below]).encode()).hexdigest()
    kept = cache_root() / "proof-roots" / key
    if not kept.is_dir():
        kept.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=kept.parent) as tmp:
            merge_trees(list(trees[:-TOP_LAYERS]), Path(tmp) / "root")
            with contextlib.suppress(OSError):  # another build kept the same one first
                os.rename(Path(tmp) / "root", kept)
    return kept


def _mountpoints(root: Path, workdir: str) -> Path:
    """What a runtime makes before it starts the command: a missing working directory,
    and an ``/etc/hosts`` to bind its own over."""
    work = root / workdir.lstrip("/")
    if not work.exists() and not work.is_symlink():
        work.mkdir(parents=True)
    hosts = root / "etc" / "hosts"
    etc = root / "etc"
    if etc.is_dir() and not etc.is_symlink() and not hosts.exists() and not hosts.is_symlink():
        hosts.touch()
    return root


class _Changes:
    """What laying the top layers over the kept root does: paths it adds (the topmost of
    each new subtree) and kept directories it enters (whose modes it may set)."""

    def __init__(self) -> None:
        self.added: set[str] = set()
        self.entered: set[str] = set()

    def to_json(self) -> str:
        return json.dumps({"added": sorted(self.added), "entered": sorted(self.entered)})


def _additions(kept: Path, top: Sequence[Path], extras: Sequence[str]) -> _Changes | None:
    """The changes, or None when the top layers replace, hide or go through (a symlink)
    anything of the kept root."""
    changes = _Changes()
    for tree in top:
        for dirpath, dirnames, filenames in os.walk(tree):
            rel_dir = os.path.relpath(dirpath, tree)
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in filenames:
                rel = os.path.join(rel_dir, name)
                if name.startswith(WH_PREFIX) or os.path.lexists(kept / rel):
                    return None
                changes.added.add(rel)
            for name in list(dirnames):
                rel = os.path.join(rel_dir, name)
                if not _placed_as_dir(tree / rel, kept / rel, changes, rel):
                    return None
                if rel in changes.added:
                    dirnames.remove(name)  # a new subtree: its topmost path is enough
    for rel in extras:
        parts = [p for p in rel.split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if any(sub == a or sub.startswith(a + "/") for a in changes.added):
                break
            k = kept / sub
            if not os.path.lexists(k):
                changes.added.add(sub)
                break
            if k.is_symlink() or not k.is_dir():
                if i < len(parts):
                    return None  # the runtime would create it through a link
                break
    return changes


def _placed_as_dir(src: Path, k: Path, changes: _Changes, rel: str) -> bool:
    if src.is_symlink():
        if os.path.lexists(k):
            return False
        changes.added.add(rel)
        return True
    if not os.path.lexists(k):
        changes.added.add(rel)
        return True
    if k.is_symlink() or not k.is_dir():
        return False
    changes.entered.add(rel)
    return True


@contextlib.contextmanager
def _locked_copy(kept: Path, changes: _Changes | None) -> Iterator[Path | None]:
    """The kept root's reusable copy, reset to the kept root and held for this build; None
    when it cannot be used (the changes are not additions, or another build holds it)."""
    if changes is None:
        yield None
        return
    work = kept.with_name(kept.name + ".work")
    state = kept.with_name(kept.name + ".work.json")
    with open(kept.with_name(kept.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield None
            return
        if not _reset(work, state, kept):
            subprocess.run(["cp", "-a", "-l", str(kept), str(work)], check=True)
        # Written before the layers go in, so a build stopped half-way is undone next time.
        write_atomic(state, changes.to_json())
        yield work


def _reset(work: Path, state: Path, kept: Path) -> bool:
    """``work`` made equal to ``kept`` again by undoing the additions its state names;
    False (and ``work`` removed) when there is no state to trust."""
    added, entered = _state(state)
    with contextlib.suppress(FileNotFoundError):
        state.unlink()  # a reset stopped half-way leaves no state: the copy is made again
    if added is None or entered is None or not work.is_dir():
        shutil.rmtree(work, ignore_errors=True)
        return False
    for rel in added:
        path = work / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
    for rel in entered:
        with contextlib.suppress(OSError):
            os.chmod(work / rel, stat.S_IMODE((kept / rel).lstat().st_mode))
    return True


def _state(state: Path) -> tuple[list[str] | None, list[str] | None]:
    """The last proof's changes; (None, None) when missing or damaged (a damaged cache
    entry is never followed out of the copy)."""
    try:
        data = json.loads(state.read_text())
        added, entered = list(data["added"]), list(data["entered"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    if not all(_inside(rel) for rel in added + entered):
        return None, None
    return added, entered


def _inside(rel: object) -> bool:
    return (
        isinstance(rel, str) and bool(rel) and not rel.startswith("/")
        and ".." not in rel.split("/") and "\0" not in rel
    )  # fmt: skip
