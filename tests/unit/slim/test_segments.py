"""PT_LOAD invariants: each one on hand-made headers, and the one glibc enforces on a real
library whose header was broken the way GNU strip breaks patchelf'd files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.slim import build_so, real_dlopen, shift_load_offset

from torchslim.slim.elf import Load, Section, elf_info
from torchslim.slim.segments import PAGE, load_problem, mapped_problem

TEXT = Load(offset=0x1000, vaddr=0x1000, filesz=0x800, memsz=0x800, align=0x1000)
DATA = Load(offset=0x2E00, vaddr=0x3E00, filesz=0x200, memsz=0x400, align=0x1000)


def test_sound_headers_pass() -> None:
    assert load_problem([TEXT, DATA], file_size=0x3000) is None


@pytest.mark.parametrize(
    ("loads", "size", "words"),
    [
        ([TEXT, Load(0x2E10, 0x3E00, 0x200, 0x400, 0x1000)], 0x3100, "not page-aligned"),
        ([TEXT, Load(0x2E00, 0x3E00, 0x200, 0x400, 0x200000)], 0x3000, "p_align"),
        ([TEXT, Load(0x2E00, 0x3E00, 0x500, 0x400, 0x1000)], 0x4000, "p_filesz"),
        ([TEXT, DATA], 0x2F00, "past the file end"),
        ([DATA, TEXT], 0x3000, "not sorted"),
        ([TEXT, Load(0x1400, 0x1400, 0x100, 0x100, 0x1000)], 0x3000, "overlap in memory"),
        ([TEXT, Load(0x1400, 0x5400, 0x100, 0x100, 0x1000)], 0x3000, "file ranges overlap"),
        ([], 0x3000, "no PT_LOAD"),
    ],
)
def test_each_invariant(loads: list[Load], size: int, words: str) -> None:
    problem = load_problem(loads, size)
    assert problem is not None and words in problem


def test_real_loader_refuses_what_the_check_refuses(tmp_path: Path) -> None:
    lib = build_so(tmp_path / "libok.so", "int answer(void) { return 42; }\n")
    info = elf_info(lib)
    assert info is not None and len(info.loads) >= 2
    assert load_problem(info.loads, lib.stat().st_size) is None
    assert real_dlopen(lib).returncode == 0

    broken = tmp_path / "libbroken.so"
    shutil.copy(lib, broken)
    shift_load_offset(broken, 1, 0x10)
    binfo = elf_info(broken)
    assert binfo is not None
    problem = load_problem(binfo.loads, broken.stat().st_size)
    assert problem is not None and "not page-aligned" in problem
    real = real_dlopen(broken)
    assert real.returncode != 0
    assert "ELF load command address/offset not page-aligned" in real.stderr
    assert PAGE == 4096


def test_mapped_sections() -> None:
    text = Section(".text", False, 0x1100, 0x1100, 0x100)
    bss = Section(".bss", True, 0x4000, 0x3000, 0x100)
    assert mapped_problem([text, bss], [bss, text], [TEXT, DATA]) is None  # order is free
    moved = Section(".text", False, 0x1200, 0x1200, 0x100)
    assert "moved" in (mapped_problem([text], [moved], [TEXT]) or "")
    off = Section(".text", False, 0x1100, 0x2100, 0x100)  # offset no longer matches address
    assert "not mapped" in (mapped_problem([text], [off], [TEXT]) or "")
