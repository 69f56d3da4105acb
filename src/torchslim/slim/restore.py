"""Undo slimming for the files a proof run could not load, and what they load.

The build's proof step loads every kept extension module and library with the image's
own interpreter. For each image path that failed, ``restore`` puts back from the backup
(``slim_tree(backup=...)``) the file itself if a rule removed or stripped it, and every
removed or stripped file that loading it brings in, following the loader model of
``slim.loader`` on the tree as it was before slimming (as a fresh process and after
``import torch``). Each restored file's RECORD line comes back, and the ledger lists
the change as reverted with the loader's message.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torchslim.slim.backup import Backup, Change
from torchslim.slim.closure import DRIVER_LIBS, SYSTEM_LIB_DIRS, image_system, short
from torchslim.slim.image import ImageView
from torchslim.slim.ledger import Ledger
from torchslim.slim.loader import Process, System
from torchslim.slim.record import restore_record_lines
from torchslim.slim.roots import after_imports

log = logging.getLogger(__name__)
NOT_FOUND = "cannot open shared object file"  # glibc's dlerror() for a name not found
# What the dynamic loader says when it cannot map or link a file names the file, then a
# colon: "ImportError: /x.so: undefined symbol: f", "/x.so: ELF load command …". Removing
# .symtab and debug sections can cause only such an error; a module's own Python error
# ("initialization failed", "cannot import name …") is never a strip's doing.
_LOADER_ERROR = re.compile(r"(?:^|[\s:])\S*\.so(?:\.[\w.]+)?: ")


@dataclass(frozen=True)
class Restored:
    """``change`` was undone because loading ``failed`` needs it."""

    change: Change
    failed: str
    reason: str


def _loads(view: ImageView, system: System, path: str, interpreter: str | None) -> set[str]:
    """Image paths loading ``path`` maps: as a program, or dlopened fresh and after torch."""
    resolved = view.resolve(path)
    if resolved is None:
        return set()
    info = system.elf(resolved)
    if info is None:
        return {resolved}
    if info.interp:
        return set(Process.run(system, resolved)[0].loaded())
    fresh = Process(system)
    fresh.dlopen(resolved)
    state = after_imports(view, system, interpreter)[0]
    before = set(state.loaded())
    state.dlopen(resolved)
    return set(fresh.loaded()) | (set(state.loaded()) - before) | {resolved}


def _put_back(root: Path, backup: Backup, change: Change) -> None:
    src = backup.file(change.path)
    dest = root / change.path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    try:
        os.replace(src, dest)
    except OSError:
        shutil.move(src, dest)


def restore(
    root: Path,
    backup_dir: Path,
    paths: Sequence[str],
    ledger: Ledger,
    reason_by_path: Mapping[str, str] | None = None,
    *,
    trees: Sequence[tuple[Path, str]] = (),
    interpreter: str | None = None,
    machine: str = "EM_X86_64",
) -> list[Restored]:
    """Restore into ``root`` (the slimmed staging tree, image ``/``) what ``paths`` need.

    ``paths``: image paths that failed to load; ``reason_by_path``: the loader's message
    for each (goes to the ledger). ``trees``: other image trees that provide libraries
    (the base). Restored changes leave the backup; the others stay undoable.
    """
    reasons = dict(reason_by_path or {})
    backup = Backup.load(backup_dir)
    view = ImageView([(backup_dir / "files", "/"), (root, "/"), *trees])
    system = image_system(view, SYSTEM_LIB_DIRS, DRIVER_LIBS, machine)
    chosen: dict[str, tuple[str, str]] = {}
    for failed in paths:
        message = reasons.get(failed, "failed to load in the proof run")
        loads = _loads(view, system, failed, interpreter) | {posixpath.normpath(failed)}
        changed = {p for p in loads if p in backup.changes}
        # The loader's message names the culprit ("libx.so: ELF load command ..."): restore
        # it alone, with every removed file; otherwise every change the load touches.
        named = {p for p in changed if posixpath.basename(p) in message}
        if NOT_FOUND in message or not _LOADER_ERROR.search(message):
            # a library no file provides (libGL.so.1 for opencv-python), or the module's own
            # error: a removal can cause that, a strip never can
            changed = {p for p in changed if backup.changes[p].action == "remove"}
        elif named:
            changed = named | {p for p in changed if backup.changes[p].action == "remove"}
        for path in sorted(changed):
            if path not in chosen:
                why = message if path == failed else f"loading {short(failed)}: {message}"
                chosen[path] = (failed, why)
    out: list[Restored] = []
    for path, (failed, why) in sorted(chosen.items()):
        change = backup.changes.pop(path)
        _put_back(root, backup, change)
        ledger.revert(change.rule, path, change.bytes, why, applied=True)
        out.append(Restored(change, failed, why))
        log.warning("slim: restored %s (rule %s): %s", short(path), change.rule, why)
    _restore_records(root, backup, {r.change.path for r in out})
    backup.save()
    return out


def _restore_records(root: Path, backup: Backup, restored: set[str]) -> None:
    for record in backup.records():
        site = posixpath.dirname(posixpath.dirname(record))
        rels = {p[len(site) + 1 :] for p in restored if p.startswith(site + "/")}
        if rels:
            original = backup.record(record).read_text(encoding="utf-8")
            restore_record_lines(root / record.lstrip("/"), original, rels)
