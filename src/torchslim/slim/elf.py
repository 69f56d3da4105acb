"""The one ELF reader of slimming and the closure check (pyelftools), and binutils ``strip``.

``elf_info`` reads what the dynamic loader uses (soname, DT_NEEDED, DT_RPATH, DT_RUNPATH,
DF_1_NODEFLIB, PT_INTERP), whether ``strip`` can save bytes, and the PT_LOAD program
headers (``slim.segments`` checks them before a stripped file is kept).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

log = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"
DF_1_NODEFLIB = 0x800
SHF_ALLOC = 0x2


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
class Load:
    """One PT_LOAD program header."""

    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True)
class Section:
    """One allocated section (SHF_ALLOC): what the loader maps, by address."""

    name: str
    nobits: bool
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader sees and whether strip can save bytes."""

    soname: str | None
    needed: tuple[str, ...]
    strippable: bool  # has .symtab or .debug_* sections, which the loader never reads
    rpath: tuple[str, ...] = ()  # DT_RPATH as written (the loader ignores it when runpath)
    runpath: tuple[str, ...] = ()
    machine: str = "EM_X86_64"
    elfclass: int = 64
    kind: str = "ET_DYN"  # e_type
    interp: bool = False  # has PT_INTERP: runs as a program (ET_EXEC, PIE)
    nodeflib: bool = False  # DF_1_NODEFLIB: no ld.so.cache, no default directories
    loads: tuple[Load, ...] = ()
    sections: tuple[Section, ...] = ()  # allocated ones only

    @property
    def loader_facts(self) -> tuple[object, ...]:
        """What must not change when the file is stripped."""
        return (self.soname, self.needed, self.rpath, self.runpath, self.nodeflib, self.interp)


def _split(value: object) -> list[str]:
    return str(value).split(":")


def elf_info(path: Path) -> ElfInfo | None:
    """Read an ELF file's loader facts; None when it is not a readable ELF file."""
    if not is_elf(path):
        return None
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            soname: str | None = None
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            nodeflib = False
            strippable = False
            sections: list[Section] = []
            for section in elf.iter_sections():
                name = section.name
                if name == ".symtab" or name.startswith(".debug_"):
                    strippable = True
                if int(section["sh_flags"]) & SHF_ALLOC and section["sh_size"]:
                    sections.append(
                        Section(
                            name,
                            section["sh_type"] == "SHT_NOBITS",
                            int(section["sh_addr"]),
                            int(section["sh_offset"]),
                            int(section["sh_size"]),
                        )
                    )
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        needed.append(str(tag.needed))  # type: ignore[attr-defined]
                    elif kind == "DT_SONAME":
                        soname = str(tag.soname)  # type: ignore[attr-defined]
                    elif kind == "DT_RPATH":
                        rpath += _split(tag.rpath)  # type: ignore[attr-defined]
                    elif kind == "DT_RUNPATH":
                        runpath += _split(tag.runpath)  # type: ignore[attr-defined]
                    elif kind == "DT_FLAGS_1":
                        nodeflib = bool(int(tag.entry.d_val) & DF_1_NODEFLIB)
            loads: list[Load] = []
            interp = False
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_INTERP":
                    interp = True
                elif seg["p_type"] == "PT_LOAD":
                    loads.append(
                        Load(
                            int(seg["p_offset"]),
                            int(seg["p_vaddr"]),
                            int(seg["p_filesz"]),
                            int(seg["p_memsz"]),
                            int(seg["p_align"]),
                        )
                    )
            return ElfInfo(
                soname=soname,
                needed=tuple(needed),
                strippable=strippable,
                rpath=tuple(rpath),
                runpath=tuple(runpath),
                machine=str(elf["e_machine"]),
                elfclass=int(elf.elfclass),
                kind=str(elf["e_type"]),
                interp=interp or elf["e_type"] == "ET_EXEC",
                nodeflib=nodeflib,
                loads=tuple(loads),
                sections=tuple(sections),
            )
    except (ELFError, OSError, ValueError, AssertionError) as exc:
        log.warning("cannot read ELF %s (%s); leaving it alone", path, exc)
        return None


def strip_tool() -> str | None:
    """Path of binutils ``strip``, or None when the host has none."""
    return shutil.which("strip")
