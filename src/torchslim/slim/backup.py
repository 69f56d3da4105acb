"""What slimming changed, kept aside so a change can be undone file by file.

Layout of a backup directory::

    files/<image path>     the original bytes of each removed or stripped file (or link)
    records/<image path>   each ``*.dist-info/RECORD`` as it was before slimming
    manifest.json          {"changes": [{path, rule, action: remove|strip, bytes}]}

Removed files are moved here (a rename on the same filesystem, so no copy); stripped
files keep their original inode here as a hard link. ``slim.restore`` puts them back.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

MANIFEST = "manifest.json"
Action = Literal["remove", "strip"]


@dataclass(frozen=True)
class Change:
    """``rule`` removed or stripped ``path`` (an image path), saving ``bytes``."""

    path: str
    rule: str
    action: Action
    bytes: int


class Backup:
    """A backup directory being written by ``slim_tree`` or read by ``restore``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.changes: dict[str, Change] = {}

    def file(self, image_path: str) -> Path:
        """Where the original bytes of ``image_path`` are kept."""
        return self.dir / "files" / image_path.lstrip("/")

    def record(self, image_path: str) -> Path:
        """Where the pre-slimming copy of the RECORD at ``image_path`` is kept."""
        return self.dir / "records" / image_path.lstrip("/")

    def move_removed(self, image_path: str, host: Path, rule: str, nbytes: int) -> None:
        """Move ``host`` (a file or symlink about to be removed) into the backup."""
        dest = self.file(image_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(host, dest)
        except OSError:
            shutil.move(host, dest)  # another filesystem
        self.changes[image_path] = Change(image_path, rule, "remove", nbytes)

    def note_stripped(self, image_path: str, rule: str, nbytes: int) -> None:
        """``image_path``'s original is at ``file(image_path)`` (see ``strip_checked``)."""
        self.changes[image_path] = Change(image_path, rule, "strip", nbytes)

    def copy_record(self, image_path: str, host: Path) -> None:
        """Keep the RECORD at ``image_path`` as it is now (before it is rewritten)."""
        dest = self.record(image_path)
        if dest.exists():
            return  # the first copy is the original
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host, dest)

    def records(self) -> list[str]:
        """Image paths of the RECORD files kept."""
        base = self.dir / "records"
        return sorted("/" + p.relative_to(base).as_posix() for p in base.rglob("RECORD"))

    def save(self) -> None:
        """Write the manifest (call after each batch of changes)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rows = [asdict(c) for _, c in sorted(self.changes.items())]
        tmp = self.dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"changes": rows}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.dir / MANIFEST)

    @classmethod
    def load(cls, directory: Path) -> Backup:
        """The backup written at ``directory`` (empty when there is none)."""
        backup = cls(directory)
        try:
            data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return backup
        for row in data.get("changes", []):
            action: Action = "strip" if row["action"] == "strip" else "remove"
            change = Change(str(row["path"]), str(row["rule"]), action, int(row["bytes"]))
            backup.changes[change.path] = change
        return backup
