"""The whole torch 2.13.0 CPU wheel (700 MB unpacked) slimmed under ``inference``.

Run: pytest -m e2e tests/unit/slim/test_slim_e2e.py -s   (prints bytes removed per rule)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.slim import SITE, TORCH_WHEEL, tree_bytes, unzip

from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import check_closure, raise_for_missing
from torchslim.slim.elf import elf_info
from torchslim.slim.ledger import Ledger

pytestmark = pytest.mark.e2e


def test_full_torch_wheel_inference(tmp_path: Path) -> None:
    if not TORCH_WHEEL.exists():
        pytest.skip(f"{TORCH_WHEEL} not present")
    site = tmp_path / SITE.lstrip("/")
    unzip(TORCH_WHEEL, site, lambda name: True)
    before = tree_bytes(site)
    ledger = Ledger()
    slim_tree(tmp_path, SITE, ledger=ledger)
    after = tree_bytes(site)

    print(f"\nbefore {before:,}  after {after:,}  removed {ledger.total():,}")
    for rid, _why, files, nbytes in ledger.by_rule():
        print(f"  {rid:24} {files:6} files {nbytes:>13,} bytes")

    assert ledger.total() == before - after
    assert ledger.total() > 250_000_000
    assert [p.name for p in (site / "torch/bin").iterdir()] == ["torch_shm_manager"]
    for lib in ("libtorch_cpu.so", "libtorch_python.so", "libc10.so", "libgomp.so.1"):
        assert (site / "torch/lib" / lib).exists()
    # Every library a kept ELF needs from torch/lib is still there.
    present = {p.name for p in (site / "torch/lib").iterdir()}
    wheel_libs = present | {"libjitbackend_test.so", "libtorchbind_test.so"}
    for path in site.rglob("*.so*"):
        info = elf_info(path)
        if info is None:
            continue
        assert not info.strippable or path.name.startswith("_C."), path
        missing = {n for n in info.needed if n in wheel_libs and n not in present}
        assert not missing, (path, missing)


def test_full_torch_wheel_closure_no_slim_and_inference(tmp_path: Path) -> None:
    """As published, only torch/bin/test_shim misses libraries (RUNPATH $ORIGIN, libraries
    in torch/lib): a warning, so --no-slim builds; after slimming nothing is missing."""
    sys_dir = Path("/usr/lib/x86_64-linux-gnu")
    if not TORCH_WHEEL.exists() or not (sys_dir / "libc.so.6").exists():
        pytest.skip(f"{TORCH_WHEEL} or {sys_dir} not present")
    site = tmp_path / SITE.lstrip("/")
    unzip(TORCH_WHEEL, site, lambda name: True)
    trees = [(tmp_path, "/"), (sys_dir, str(sys_dir))]
    published = check_closure(trees, check_prefixes=[SITE], removed={})
    assert {(m.file.removeprefix(SITE + "/"), m.upstream) for m in published} == {
        ("torch/bin/test_shim", True)
    }
    raise_for_missing(published)
    removed = slim_tree(tmp_path, SITE, ledger=Ledger(), backup=tmp_path / "bk")
    assert check_closure(trees, check_prefixes=[SITE], removed=removed) == []
