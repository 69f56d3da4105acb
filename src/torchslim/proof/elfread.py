"""ELF headers, read the way the checker needs them inside the image (standard library
only, no syntax newer than 3.9): what kind of file, whether its segments fit the file
(dlopen of a truncated one dies of SIGBUS), whether it exports a symbol.

Its source is prepended to the checker's when the checker runs in the image
(``checkrun.CHECKER``); on the host it is an ordinary module.
"""

from __future__ import annotations

import os
import struct

ET_EXEC, ET_DYN, ET_REL = 2, 3, 1
PT_LOAD, PT_INTERP = 1, 3
SHT_DYNSYM = 11


def read_elf(path: str) -> tuple[int, set[int], int] | None:
    """(e_type, program header types, bytes the PT_LOAD segments need) or None (not ELF)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return None
            end = "<" if head[5] == 1 else ">"
            e_type = struct.unpack(end + "H", head[16:18])[0]
            if head[4] == 2:
                phoff = struct.unpack(end + "Q", head[32:40])[0]
                phentsize, phnum = struct.unpack(end + "HH", head[54:58])
                fmt, size = end + "IIQQQQ", 40  # type, flags, offset, vaddr, paddr, filesz
            else:
                phoff = struct.unpack(end + "I", head[28:32])[0]
                phentsize, phnum = struct.unpack(end + "HH", head[42:46])
                fmt, size = end + "IIIII", 20  # type, offset, vaddr, paddr, filesz
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except (OSError, struct.error):
        return None
    types: set[int] = set()
    need = 0
    for i in range(0, len(table) - size + 1, max(phentsize, 1)):
        fields = struct.unpack(fmt, table[i : i + size])
        offset, filesz = (fields[2], fields[5]) if size == 40 else (fields[1], fields[4])
        types.add(fields[0])
        if fields[0] == PT_LOAD:
            need = max(need, offset + filesz)
    return e_type, types, need


def elf_kind(path: str) -> str | None:
    """``so`` (a loadable shared object), ``exe``, ``debug``, ``other`` (ELF), or None."""
    info = read_elf(path)
    if info is None:
        return None
    e_type, types, _ = info
    if e_type != ET_DYN:
        return "exe" if e_type == ET_EXEC else "other"
    name = os.path.basename(path)
    if PT_LOAD not in types or name.endswith(".debug"):
        return "debug"
    if PT_INTERP in types and ".so" not in name:
        return "exe"  # a PIE program (torch/bin/*), not meant for dlopen
    return "so"


def truncated(path: str) -> str | None:
    """Why ``path`` cannot be mapped (its segments reach past its end), or None.

    dlopen of such a file dies of SIGBUS instead of failing, so it is never loaded.
    """
    info = read_elf(path)
    if info is None:
        return "not an ELF file"
    size = os.path.getsize(path)
    if info[2] > size:
        return f"truncated: the file has {size} bytes, its segments need {info[2]}"
    return None


def exports_symbol(path: str, symbol: str) -> bool:
    """Whether the dynamic string table of ``path`` names ``symbol`` (e.g. PyInit_foo)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            end = "<" if head[5] == 1 else ">"
            if head[4] == 2:
                (shoff,) = struct.unpack(end + "Q", head[40:48])
                shentsize, shnum = struct.unpack(end + "HH", head[58:62])
                fmt, size = end + "IIQQQQI", 4 + 4 + 8 * 4 + 4
            else:
                (shoff,) = struct.unpack(end + "I", head[32:36])
                shentsize, shnum = struct.unpack(end + "HH", head[46:50])
                fmt, size = end + "IIIIIII", 28
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [
                struct.unpack(fmt, table[i : i + size])
                for i in range(0, len(table) - size + 1, max(shentsize, 1))
            ]
            for sec in sections:
                if sec[1] == SHT_DYNSYM and sec[6] < len(sections):
                    strtab = sections[sec[6]]
                    f.seek(strtab[4])
                    names = b"\0" + f.read(strtab[5])
                    return b"\0" + symbol.encode() + b"\0" in names
    except (OSError, struct.error, IndexError):
        return False
    return False
