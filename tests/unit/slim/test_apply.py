"""Rules on small real trees: gcc-built ELF files, archives, test suites, caches."""

from __future__ import annotations

import ctypes
import importlib.metadata
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from support.slim import SITE, build_so, gcc, record_hash, tree_bytes, write_dist

from torchslim.errors import BuildError, ConfigError
from torchslim.slim.apply import slim_tree
from torchslim.slim.elf import elf_info
from torchslim.slim.ledger import Ledger
from torchslim.slim.rules import rule_by_id

C_LIB = "int answer(void) { return 42; }\nstatic int helper(int x) { return x + 1; }\n"


def _site(root: Path) -> Path:
    site = root / SITE.lstrip("/")
    site.mkdir(parents=True)
    return site


def _write(site: Path, rel: str, text: str = "x = 1\n") -> str:
    path = site / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return rel


def test_strip_symbols_shrinks_so_which_still_loads(tmp_path: Path) -> None:
    site = _site(tmp_path)
    so = build_so(site / "fastpkg/_native.so", C_LIB)
    dist = write_dist(site, "fastpkg", ["fastpkg/_native.so"])
    before = so.stat().st_size
    info = elf_info(so)
    assert info is not None and info.strippable

    ledger = Ledger()
    slim_tree(tmp_path, SITE, ledger=ledger)

    after = so.stat().st_size
    assert after < before
    assert ledger.by_rule() == [
        ("strip-symbols", rule_by_id("strip-symbols").why, 1, before - after)
    ]
    info = elf_info(so)
    assert info is not None and not info.strippable
    assert ctypes.CDLL(str(so)).answer() == 42  # dynamic symbols survive
    # RECORD now carries the stripped file's hash and size.
    files = importlib.metadata.Distribution.at(dist).files or []
    (entry,) = [f for f in files if str(f) == "fastpkg/_native.so"]
    assert entry.hash is not None
    assert f"{entry.hash.mode}={entry.hash.value}" == record_hash(so)
    assert entry.size == after


def test_strip_symbols_kept_under_full(tmp_path: Path) -> None:
    site = _site(tmp_path)
    so = build_so(site / "fastpkg/_native.so", C_LIB)
    before = so.read_bytes()
    slim_tree(tmp_path, SITE, profile="full", ledger=(ledger := Ledger()))
    assert so.read_bytes() == before and ledger.total() == 0


def test_strip_symbols_skipped_without_strip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = _site(tmp_path)
    so = build_so(site / "fastpkg/_native.so", C_LIB)
    before = so.read_bytes()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with caplog.at_level(logging.WARNING):
        slim_tree(tmp_path, SITE, ledger=(ledger := Ledger()))
    assert so.read_bytes() == before and ledger.total() == 0
    assert "strip" in caplog.text


def test_library_needed_by_kept_elf_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = _site(tmp_path)
    lib = site / "torch/lib"
    build_so(lib / "libtorchbind_test.so", C_LIB, "-Wl,-soname,libtorchbind_test.so")
    build_so(lib / "libjitbackend_test.so", C_LIB)
    user = "extern int answer(void); int use(void) { return answer(); }\n"
    build_so(lib / "libuser.so", user, f"-L{lib}", "-ltorchbind_test")
    info = elf_info(lib / "libuser.so")
    assert info is not None and "libtorchbind_test.so" in info.needed

    with caplog.at_level(logging.WARNING):
        slim_tree(tmp_path, SITE, ledger=(ledger := Ledger()))
    assert (lib / "libtorchbind_test.so").exists()  # rescued: libuser.so needs it
    assert not (lib / "libjitbackend_test.so").exists()
    assert "DT_NEEDED" in caplog.text and "libtorchbind_test.so" in caplog.text
    files = {rid: n for rid, _, n, _ in ledger.by_rule()}
    assert files["torch-test-libraries"] == 1


def test_static_libraries_removed(tmp_path: Path) -> None:
    if shutil.which("ar") is None:
        pytest.skip("binutils ar not installed")
    site = _site(tmp_path)
    obj = tmp_path / "x.o"
    src = tmp_path / "x.c"
    src.write_text(C_LIB)
    gcc(["-c", "-o", str(obj), str(src)])
    archive = site / "somepkg/lib/libsome.a"
    archive.parent.mkdir(parents=True)
    subprocess.run(["ar", "rcD", str(archive), str(obj)], check=True)
    size = archive.stat().st_size
    for profile, gone in (("full", False), ("compile", True)):
        slim_tree(tmp_path, SITE, profile=profile, ledger=(ledger := Ledger()))
        assert archive.exists() is not gone
        assert ledger.total() == (size if gone else 0)
    assert not (site / "somepkg").exists()  # emptied directories go too


def test_pycache_removed_in_every_profile(tmp_path: Path) -> None:
    for profile in ("inference", "full"):
        root = tmp_path / profile
        site = _site(root)
        _write(site, "pkg/__init__.py")
        pyc = _write(site, "pkg/__pycache__/__init__.cpython-311.pyc", "junk")
        stray = _write(site, "pkg/old.pyc", "junk")
        slim_tree(root, SITE, profile=profile, ledger=(ledger := Ledger()))
        assert not (site / pyc).exists() and not (site / stray).exists()
        assert (site / "pkg/__init__.py").exists()
        assert ledger.by_rule() == [("pycache", rule_by_id("pycache").why, 2, 8)]


def test_package_test_suites(tmp_path: Path) -> None:
    site = _site(tmp_path)
    removed = [
        _write(site, "sympy/core/tests/test_basic.py"),
        _write(site, "sympy/core/tests/__init__.py"),
        _write(site, "numpy/_core/tests/data/umath-validation.csv", "1,2\n"),  # known package
        _write(site, "plainpkg/test/test_thing.py"),
    ]
    kept = [
        _write(site, "sympy/core/basic.py"),
        # imported by the package itself, absolutely and relatively:
        _write(site, "absimp/tests/test_a.py"),
        _write(site, "absimp/tests/helpers.py"),
        _write(site, "absimp/core.py", "from absimp.tests import helpers\n"),
        _write(site, "relimp/sub/tests/test_b.py"),
        _write(site, "relimp/sub/tests/fixtures.py"),
        _write(site, "relimp/sub/deep/mod.py", "from ..tests import (\n    fixtures,\n)\n"),
        _write(site, "bareimp/test/test_c.py"),
        _write(site, "bareimp/runner.py", "from . import (os_path, test)\n"),
        _write(site, "bareimp/other.py", "import os  # names no suite: not scanned\n"),
        # not a test suite (no test_*.py) in an unknown package:
        _write(site, "datapkg/tests/data.json", "{}"),
        # torch.testing is imported by torch; top-level "tests" belongs to nobody we know:
        _write(site, "torch/testing/tests/test_utils.py"),
        _write(site, "tests/test_toplevel.py"),
        # metadata is never touched:
        _write(site, "pkg-1.0.dist-info/licenses/test/test_license.py"),
    ]
    dist = write_dist(site, "sympy", ["sympy/core/basic.py", *removed[:2]])
    before = tree_bytes(site)

    slim_tree(tmp_path, SITE, ledger=(ledger := Ledger()))

    assert [rel for rel in removed if (site / rel).exists()] == []
    assert [rel for rel in kept if not (site / rel).exists()] == []
    assert ledger.by_rule()[0][:1] == ("package-test-suites",)
    assert ledger.total() == before - tree_bytes(site)
    files = {str(f) for f in importlib.metadata.Distribution.at(dist).files or []}
    assert "sympy/core/basic.py" in files and "sympy/core/tests/test_basic.py" not in files


def test_keep_absolute_image_glob(tmp_path: Path) -> None:
    site = _site(tmp_path)
    _write(site, "sympy/core/tests/test_basic.py")
    _write(site, "sympy/sets/tests/test_sets.py")
    slim_tree(tmp_path, SITE, keep=[f"{SITE}/sympy/core/**"], ledger=Ledger())
    assert (site / "sympy/core/tests/test_basic.py").exists()
    assert not (site / "sympy/sets/tests").exists()


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="site-packages"):
        slim_tree(tmp_path, SITE, ledger=Ledger())
    _site(tmp_path)
    with pytest.raises(ConfigError, match="inference"):
        slim_tree(tmp_path, SITE, profile="small", ledger=Ledger())
