"""``strip --strip-unneeded`` to a temporary copy, kept only when the loader can still map it.

The original is checked first (``slim.segments``): a file whose PT_LOAD headers are
already unusual is left alone. The stripped copy must keep the loader facts (soname,
DT_NEEDED, RPATH/RUNPATH, flags, PT_INTERP) and pass the same PT_LOAD checks; otherwise it
is dropped and the caller records a revert in the ledger. The original is replaced by an
atomic rename only on success, so a failure never leaves a half-written file.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from torchslim.slim.elf import elf_info
from torchslim.slim.segments import load_problem, mapped_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StripResult:
    """What happened to one file: bytes saved, or why its stripped copy was refused."""

    saved: int = 0
    reverted: str | None = None  # the stripped copy broke an invariant; original kept
    skipped: str | None = None  # strip was not tried or failed; original kept
    kept: int = 0  # bytes the refused stripped copy would have saved


def strip_checked(path: Path, tool: str, *, original_to: Path | None = None) -> StripResult:
    """Strip ``path`` in place if the result is smaller and loads as the original does.

    ``original_to``: where to keep the original bytes (a hard link when possible) before
    the stripped copy replaces it, so the change can be undone later.
    """
    before = elf_info(path)
    if before is None:
        return StripResult(skipped="not a readable ELF file")
    size = path.stat().st_size
    problem = load_problem(before.loads, size)
    if problem is not None:
        return StripResult(skipped=f"original already unusual: {problem}")
    tmp = path.with_name(f".{path.name}.strip-tmp")
    proc = subprocess.run(
        [tool, "--strip-unneeded", "-o", str(tmp), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        log.warning("strip failed on %s: %s; kept as is", path, proc.stderr.strip()[:200])
        return StripResult(skipped="strip failed: " + proc.stderr.strip()[:200])
    after_size = tmp.stat().st_size
    if after_size >= size:
        tmp.unlink()
        return StripResult()
    after = elf_info(tmp)
    if after is None:
        reason = "the stripped copy is not a readable ELF file"
    elif after.loader_facts != before.loader_facts:
        reason = "strip changed the dynamic section (soname, DT_NEEDED or search paths)"
    else:
        reason = (
            load_problem(after.loads, after_size)
            or mapped_problem(before.sections, after.sections, after.loads)
            or ""
        )
    if reason:
        tmp.unlink()
        log.warning("strip-symbols: kept %s unstripped: %s", path, reason)
        return StripResult(reverted=f"stripped copy: {reason}", kept=size - after_size)
    if original_to is not None:
        _keep_original(path, original_to)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    return StripResult(saved=size - after_size)


def _keep_original(path: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(path, dest)  # the rename below gives ``path`` a new inode; this keeps the old
    except OSError:
        shutil.copy2(path, dest)
