"""Undo slimming file by file from the backup ``slim_tree`` keeps: real gcc-built libraries,
a real RECORD, the real loader before and after."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import pytest
from support.slim import SITE, build_so, link_args, real_dlopen, record_hash, write_dist

from torchslim.slim.apply import slim_tree
from torchslim.slim.backup import Backup
from torchslim.slim.ledger import Ledger
from torchslim.slim.restore import restore

C_LIB = "int answer(void) { return 42; }\nstatic int helper(int x) { return x + 1; }\n"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """torch/lib/libuser.so (RUNPATH $ORIGIN) needs libdup_test.so, which a rule removes
    because a kept copy elsewhere provides the name; pkg/_native.so gets stripped."""
    site = tmp_path / SITE.lstrip("/")
    dup = build_so(site / "torch/lib/libdup_test.so", C_LIB, "-Wl,-soname,libdup_test.so")
    build_so(site / "other/libdup_test.so", C_LIB, "-Wl,-soname,libdup_test.so")
    build_so(site / "torch/lib/libuser.so", C_LIB, *link_args(dup, runpath="$ORIGIN"))
    build_so(site / "pkg/_native.so", C_LIB)
    files = [
        "torch/lib/libdup_test.so",
        "other/libdup_test.so",
        "torch/lib/libuser.so",
        "pkg/_native.so",
    ]
    write_dist(site, "mixed", files)
    return site, {rel: _sha(site / rel) for rel in files}


def _record(site: Path) -> dict[str, str]:
    dist = importlib.metadata.Distribution.at(site / "mixed-1.0.dist-info")
    return {str(f): f"{f.hash.mode}={f.hash.value}" for f in dist.files or [] if f.hash}


def test_restore_brings_back_what_a_failed_load_needs(tmp_path: Path) -> None:
    site, original = _tree(tmp_path)
    backup = tmp_path / "bk"
    ledger = Ledger()
    removed = slim_tree(tmp_path, SITE, ledger=ledger, backup=backup)
    assert set(removed) == {f"{SITE}/torch/lib/libdup_test.so"}
    before_total = ledger.total()
    user = site / "torch/lib/libuser.so"
    failed = real_dlopen(user)
    assert failed.returncode != 0 and "libdup_test.so" in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]

    done = restore(tmp_path, backup, [f"{SITE}/torch/lib/libuser.so"], ledger,
                   {f"{SITE}/torch/lib/libuser.so": message})  # fmt: skip
    assert [(r.change.path, r.change.action) for r in done] == [
        (f"{SITE}/torch/lib/libdup_test.so", "remove")
    ]
    assert real_dlopen(user).returncode == 0
    assert _sha(site / "torch/lib/libdup_test.so") == original["torch/lib/libdup_test.so"]
    assert _record(site)["torch/lib/libdup_test.so"] == record_hash(
        site / "torch/lib/libdup_test.so"
    )
    assert _record(site)["torch/lib/libuser.so"] == record_hash(user)  # still stripped
    (revert,) = ledger.reverts()
    assert revert.rule == "torch-test-libraries" and message in revert.reason
    assert ledger.total() == before_total - revert.bytes
    assert f"{SITE}/torch/lib/libdup_test.so" not in Backup.load(backup).changes


def test_restore_of_a_stripped_file_puts_the_original_bytes_back(tmp_path: Path) -> None:
    site, original = _tree(tmp_path)
    backup = tmp_path / "bk"
    ledger = Ledger()
    slim_tree(tmp_path, SITE, ledger=ledger, backup=backup)
    native = f"{SITE}/pkg/_native.so"
    assert _sha(site / "pkg/_native.so") != original["pkg/_native.so"]
    stripped = {r[0]: r[2] for r in ledger.by_rule()}["strip-symbols"]

    done = restore(tmp_path, backup, [native], ledger, {native: "_native.so: bad ELF"})
    assert [(r.change.path, r.change.action) for r in done] == [(native, "strip")]
    assert _sha(site / "pkg/_native.so") == original["pkg/_native.so"]
    assert _record(site)["pkg/_native.so"] == record_hash(site / "pkg/_native.so")
    assert {r[0]: r[2] for r in ledger.by_rule()}["strip-symbols"] == stripped - 1
    assert ledger.reverts()[0].reason == "_native.so: bad ELF"
    assert restore(tmp_path, backup, [native], ledger) == []  # nothing left to undo


def test_restore_without_changes_does_nothing(tmp_path: Path) -> None:
    site, _ = _tree(tmp_path)
    ledger = Ledger()
    slim_tree(tmp_path, SITE, profile="full", ledger=ledger, backup=tmp_path / "bk")
    assert restore(tmp_path, tmp_path / "bk", [f"{SITE}/pkg/_native.so"], ledger) == []
    assert ledger.reverts() == []
    with pytest.raises(KeyError):
        Backup.load(tmp_path / "bk").changes[f"{SITE}/pkg/_native.so"]


def test_a_library_found_nowhere_does_not_undo_strips(tmp_path: Path) -> None:
    """opencv-python needs libGL.so.1, which no file provides: stripping its libraries is
    not the cause, so nothing is restored (and the build does not rebuild for nothing)."""
    _tree(tmp_path)
    backup = tmp_path / "bk"
    ledger = Ledger()
    slim_tree(tmp_path, SITE, ledger=ledger, backup=backup)
    native = f"{SITE}/pkg/_native.so"
    message = "OSError: libGL.so.1: cannot open shared object file: No such file or directory"
    assert restore(tmp_path, backup, [native], ledger, {native: message}) == []
    assert native in Backup.load(backup).changes
    assert ledger.reverts() == []


@pytest.mark.parametrize(
    "message",
    [
        "ImportError: initialization failed",
        "ImportError: cannot import name 'within_block_loop' from partially initialized module "
        "'pkg._native' (most likely due to a circular import) (/usr/lib/pkg/_native.so)",
    ],
)
def test_a_modules_own_error_does_not_undo_its_strip(tmp_path: Path, message: str) -> None:
    """scipy >= 1.16's _matfuncs_sqrtm_triu and matplotlib's _tkagg without Tk fail with
    their own Python error, stripped or not: a strip is undone only for what the dynamic
    loader said about the file (no false "slimming undone", no rebuild for nothing)."""
    _tree(tmp_path)
    backup = tmp_path / "bk"
    ledger = Ledger()
    slim_tree(tmp_path, SITE, ledger=ledger, backup=backup)
    native = f"{SITE}/pkg/_native.so"
    assert restore(tmp_path, backup, [native], ledger, {native: message}) == []
    assert native in Backup.load(backup).changes and ledger.reverts() == []
