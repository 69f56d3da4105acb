"""Cutting one layer's tree into parts a fleet pulls well.

A layer of more than about 20,000 files fails a partial (zstd:chunked) pull on podman
4.3 (it keeps a file open per entry; the hard limit is 20,000), and one big layer is
fetched and unpacked on one thread while runtimes pull several layers at once. So a tree
over ``MAX_ENTRIES`` entries or ``MAX_BYTES`` of contents is cut, in the layer's own
path order, into parts within both (a single file bigger than ``MAX_BYTES`` is a part of
its own). The limit on bytes is on *uncompressed* contents, so every part is also within
it compressed. A part holds the directories above its files (with their modes), so each
part unpacks alone; the cut depends only on the tree, so the parts are reproducible and
a change to one file changes one part.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from torchslim.oci.layer import scan_tree

MAX_ENTRIES = 8000
MAX_BYTES = 512 * 1024 * 1024


def plan_parts(
    entries: list[tuple[str, os.stat_result]], *, max_entries: int, max_bytes: int
) -> list[list[str]]:
    """The paths of each part, in order; one part when the tree is within both limits.

    Directories count as entries of the part they open in; the parents a part needs are
    added when it is laid out and are not counted here (at most a path's depth)."""
    parts: list[list[str]] = [[]]
    count = size = 0
    for rel, st in entries:
        grows = st.st_size if stat.S_ISREG(st.st_mode) else 0
        if parts[-1] and (count + 1 > max_entries or size + grows > max_bytes):
            parts.append([])
            count = size = 0
        parts[-1].append(rel)
        count += 1
        size += grows
    return parts


def split_tree(
    root: Path,
    dest: Path,
    *,
    max_entries: int | None = None,
    max_bytes: int | None = None,
) -> list[Path]:
    """``[root]`` when it is within the limits (default ``MAX_ENTRIES``, ``MAX_BYTES``);
    else the first part stays in ``root`` and each further part is moved to ``dest/2``,
    ``dest/3``, …; returns every part's root."""
    entries = scan_tree(root)  # the layer writer's own walk and order
    parts = plan_parts(
        entries,
        max_entries=MAX_ENTRIES if max_entries is None else max_entries,
        max_bytes=MAX_BYTES if max_bytes is None else max_bytes,
    )
    if len(parts) == 1:
        return [root]
    modes = {rel: stat.S_IMODE(st.st_mode) for rel, st in entries if stat.S_ISDIR(st.st_mode)}
    roots = [root]
    for number, paths in enumerate(parts[1:], start=2):
        part = dest / str(number)
        part.mkdir(parents=True)
        part.chmod(stat.S_IMODE(root.stat().st_mode))
        for rel in paths:
            parent = rel.rpartition("/")[0]
            _parents(part, parent, modes)
            if rel in modes:  # a directory: made here, its contents follow in order
                (part / rel).mkdir(exist_ok=True)
                (part / rel).chmod(modes[rel])
            else:
                os.rename(root / rel, part / rel)
        roots.append(part)
    return roots


def _parents(part: Path, parent: str, modes: dict[str, int]) -> None:
    """The directories above a moved path, made in ``part`` with the source's modes."""
    if not parent or (part / parent).is_dir():
        return
    built = ""
    for name in parent.split("/"):
        built = f"{built}/{name}" if built else name
        where = part / built
        if not where.is_dir():
            where.mkdir()
            where.chmod(modes.get(built, 0o755))
