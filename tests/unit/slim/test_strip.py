"""strip-symbols to a temporary copy: kept when it maps like the original, else refused."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
from support.slim import SITE, build_so, real_dlopen, shift_load_offset

from torchslim.slim.apply import slim_tree
from torchslim.slim.ledger import Ledger
from torchslim.slim.strip import strip_checked

C_LIB = "int answer(void) { return 42; }\nstatic int helper(int x) { return x + 1; }\n"


def _strip() -> str:
    tool = shutil.which("strip")
    if tool is None:
        pytest.skip("binutils strip not installed")
    return tool


def _breaking_strip(tmp_path: Path) -> Path:
    """A ``strip`` that runs the real one, then misaligns a PT_LOAD of its output."""
    tool = tmp_path / "bin/strip"
    tool.parent.mkdir(parents=True)
    tool.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[2])!r})\n"
        "from pathlib import Path\n"
        "from support.slim import shift_load_offset\n"
        f"subprocess.run([{_strip()!r}, *sys.argv[1:]], check=True)\n"
        "shift_load_offset(Path(sys.argv[sys.argv.index('-o') + 1]), 1, 0x10)\n"
    )
    tool.chmod(0o755)
    return tool


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stripped_copy_replaces_the_original_and_loads(tmp_path: Path) -> None:
    lib = build_so(tmp_path / "libx.so", C_LIB)
    before, size = _sha(lib), lib.stat().st_size
    result = strip_checked(lib, _strip(), original_to=tmp_path / "kept/libx.so")
    assert result.saved == size - lib.stat().st_size > 0
    assert result.reverted is None and result.skipped is None
    assert _sha(tmp_path / "kept/libx.so") == before  # the original, for a later restore
    assert real_dlopen(lib).returncode == 0
    assert not list(tmp_path.glob(".*strip-tmp"))


def test_original_with_broken_headers_is_left_alone(tmp_path: Path) -> None:
    lib = build_so(tmp_path / "libx.so", C_LIB)
    shift_load_offset(lib, 1, 0x10)
    before = _sha(lib)
    result = strip_checked(lib, _strip())
    assert result.saved == 0 and result.skipped is not None
    assert "not page-aligned" in result.skipped
    assert _sha(lib) == before


def test_broken_stripped_copy_is_refused(tmp_path: Path) -> None:
    lib = build_so(tmp_path / "libx.so", C_LIB)
    before = _sha(lib)
    result = strip_checked(lib, str(_breaking_strip(tmp_path)), original_to=tmp_path / "k/libx.so")
    assert result.saved == 0 and result.kept > 0
    assert result.reverted is not None and "not page-aligned" in result.reverted
    assert _sha(lib) == before and not (tmp_path / "k/libx.so").exists()
    assert real_dlopen(lib).returncode == 0
    assert not list(tmp_path.glob(".*strip-tmp"))


def test_slim_tree_lists_a_refused_strip_in_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / SITE.lstrip("/")
    lib = build_so(site / "pkg/_native.so", C_LIB)
    before = _sha(lib)
    tool = _breaking_strip(tmp_path)
    monkeypatch.setattr("torchslim.slim.apply.strip_tool", lambda: str(tool))
    ledger = Ledger()
    slim_tree(tmp_path, SITE, ledger=ledger, backup=tmp_path / "bk")
    assert _sha(lib) == before and ledger.total() == 0
    (revert,) = ledger.reverts()
    assert (revert.rule, revert.path) == ("strip-symbols", f"{SITE}/pkg/_native.so")
    assert revert.bytes > 0 and "not page-aligned" in revert.reason
    assert ledger.to_dict()["reverted"][0]["path"] == f"{SITE}/pkg/_native.so"
