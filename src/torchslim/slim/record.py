"""Keep each ``*.dist-info/RECORD`` true to the files on disk after slimming.

pip (``pip uninstall``, ``pip check``) and ``importlib.metadata.files()`` read RECORD;
listing deleted files, or stale hashes of stripped ones, would make them lie. Lines of
removed files are dropped; lines of rewritten files get a fresh sha256 and size. All
other lines are kept byte for byte.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import posixpath
from collections.abc import Set
from pathlib import Path


def record_hash(path: Path) -> str:
    """The ``sha256=<urlsafe-b64, no padding>`` form of PEP 376 / the wheel spec."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def rewrite_records(site: Path, removed: Set[str], changed: Set[str]) -> int:
    """Update every RECORD under ``site``; paths are POSIX, relative to site-packages.

    Returns the number of RECORD files rewritten.
    """
    if not removed and not changed:
        return 0
    rewritten = 0
    for record in sorted(site.glob("*.dist-info/RECORD")):
        old = record.read_text(encoding="utf-8")
        out: list[str] = []
        dirty = False
        for line in old.splitlines(keepends=True):
            rows = list(csv.reader([line]))
            if not rows or not rows[0]:
                out.append(line)
                continue
            row = rows[0]
            rel = posixpath.normpath(row[0])
            if rel in removed:
                dirty = True
                continue
            if rel in changed and len(row) >= 3:
                f = site / rel
                row = [row[0], record_hash(f), str(f.stat().st_size), *row[3:]]
                out.append(_csv_line(row))
                dirty = True
                continue
            out.append(line)
        if dirty:
            record.write_text("".join(out), encoding="utf-8")
            rewritten += 1
    return rewritten


def restore_record_lines(record: Path, original: str, restored: Set[str]) -> bool:
    """Put the original lines of ``restored`` files (site-relative) back into ``record``.

    Lines of other files stay as they are now (fresh hashes of stripped files, lines added
    after slimming); the original order is kept. Returns True when the file changed.
    """
    current = record.read_text(encoding="utf-8") if record.exists() else ""
    now: dict[str, str] = {}
    for line in current.splitlines(keepends=True):
        rows = list(csv.reader([line]))
        if rows and rows[0]:
            now[posixpath.normpath(rows[0][0])] = line
    out: list[str] = []
    listed: set[str] = set()
    for line in original.splitlines(keepends=True):
        rows = list(csv.reader([line]))
        if not rows or not rows[0]:
            continue
        rel = posixpath.normpath(rows[0][0])
        listed.add(rel)
        if rel in restored:
            out.append(line)
        elif rel in now:
            out.append(now[rel])
    out += [line for rel, line in now.items() if rel not in listed]
    text = "".join(out)
    if text == current:
        return False
    record.write_text(text, encoding="utf-8")
    return True
