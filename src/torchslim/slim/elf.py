"""The few ELF facts slimming needs, read with pyelftools, and ``strip`` via binutils."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

log = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"


def is_elf(path: Path) -> bool:
    """True for a regular file that starts with the ELF magic (symlinks are not followed)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader sees (soname, needed) and whether strip can save bytes."""

    soname: str | None
    needed: tuple[str, ...]
    strippable: bool  # has .symtab or .debug_* sections, which the loader never reads


def elf_info(path: Path) -> ElfInfo | None:
    """Read soname, DT_NEEDED and strippability; None when the file is not a readable ELF."""
    if not is_elf(path):
        return None
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            soname: str | None = None
            needed: list[str] = []
            strippable = False
            for section in elf.iter_sections():
                name = section.name
                if name == ".symtab" or name.startswith(".debug_"):
                    strippable = True
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            needed.append(str(tag.needed))  # type: ignore[attr-defined]
                        elif tag.entry.d_tag == "DT_SONAME":
                            soname = str(tag.soname)  # type: ignore[attr-defined]
            return ElfInfo(soname, tuple(needed), strippable)
    except (ELFError, OSError, ValueError) as exc:
        log.warning("cannot read ELF %s (%s); leaving it alone", path, exc)
        return None


def strip_tool() -> str | None:
    """Path of binutils ``strip``, or None when the host has none."""
    return shutil.which("strip")


def strip_unneeded(path: Path, strip: str) -> int:
    """Run ``strip --strip-unneeded`` on ``path`` in place; return the bytes saved.

    Writes to a sibling temporary file first, so a failing strip leaves the
    original untouched. The file keeps its permission bits.
    """
    before = path.stat()
    tmp = path.with_name(f".{path.name}.strip-tmp")
    proc = subprocess.run(
        [strip, "--strip-unneeded", "-o", str(tmp), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        log.warning("strip failed on %s: %s; kept as is", path, proc.stderr.strip()[:200])
        return 0
    after = tmp.stat().st_size
    if after >= before.st_size:
        tmp.unlink()
        return 0
    os.chmod(tmp, before.st_mode & 0o7777)
    os.replace(tmp, path)
    return before.st_size - after
