"""The PT_LOAD invariants ``ld.so`` relies on when it maps an ELF file.

GNU strip rewrites a file from its *sections* and recomputes the segments. On files whose
segments no longer match their sections (patchelf, used by auditwheel to set RPATHs and
rename libraries, appends segments that no section covers) it can emit a PT_LOAD whose
file offset and address disagree modulo the page size: numpy 2.x's bundled
``libscipy_openblas64_`` comes out that way and ``import numpy`` dies with "ELF load
command address/offset not page-aligned" (glibc ``_dl_map_object_from_fd``). Checking
the original and the stripped copy against these invariants catches that class of break
before an image is built.
"""

from __future__ import annotations

from collections.abc import Sequence

from torchslim.slim.elf import Load, Section

PAGE = 4096  # x86-64; also the smallest page size of the other platforms torchslim targets


def load_problem(loads: Sequence[Load], file_size: int, page: int = PAGE) -> str | None:
    """The first broken PT_LOAD invariant, in words; None when the segments are sound.

    For every PT_LOAD: ``p_offset ≡ p_vaddr`` modulo the page size (glibc refuses the file
    otherwise) and modulo ``p_align`` when that is above 1; ``p_filesz <= p_memsz``; the
    file holds ``p_offset + p_filesz`` bytes. Across them: ascending ``p_vaddr``, and no
    two overlap in memory or in the file.
    """
    if not loads:
        return "no PT_LOAD segment"
    for i, s in enumerate(loads):
        where = f"PT_LOAD #{i} (offset {s.offset:#x}, vaddr {s.vaddr:#x})"
        if (s.vaddr - s.offset) % page:
            return f"{where}: address/offset not page-aligned"
        if s.align > 1 and (s.vaddr - s.offset) % s.align:
            return f"{where}: address/offset not aligned to p_align {s.align:#x}"
        if s.filesz > s.memsz:
            return f"{where}: p_filesz {s.filesz:#x} > p_memsz {s.memsz:#x}"
        if s.offset + s.filesz > file_size:
            return f"{where}: ends at {s.offset + s.filesz:#x}, past the file end {file_size:#x}"
    for i, (a, b) in enumerate(zip(loads, loads[1:], strict=False)):
        if b.vaddr < a.vaddr:
            return f"PT_LOAD #{i + 1}: not sorted by p_vaddr"
        if a.vaddr + a.memsz > b.vaddr:
            return f"PT_LOAD #{i} and #{i + 1} overlap in memory"
    spans = sorted((s.offset, s.offset + s.filesz) for s in loads if s.filesz)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            return f"PT_LOAD file ranges overlap at offset {start:#x}"
    return None


def _layout(sections: Sequence[Section]) -> list[tuple[int, str, int, bool]]:
    return sorted((s.addr, s.name, s.size, s.nobits) for s in sections)


def mapped_problem(
    before: Sequence[Section], after: Sequence[Section], loads: Sequence[Load]
) -> str | None:
    """Why the stripped file no longer maps what the original mapped; None when it does.

    strip may only drop what the loader never maps: every allocated section must keep its
    name, address and size, and each one with file contents must still lie inside a
    PT_LOAD's file image at the offset its address implies.
    """
    if _layout(before) != _layout(after):  # strip may reorder the section headers
        return "allocated sections moved or changed size"
    for s in after:
        if s.nobits:
            continue
        if not any(
            seg.vaddr <= s.addr
            and s.addr + s.size <= seg.vaddr + seg.filesz
            and s.offset - seg.offset == s.addr - seg.vaddr
            for seg in loads
        ):
            return f"section {s.name} at {s.addr:#x} is not mapped from the file any more"
    return None
