"""The ELF closure check on real shared objects built with gcc: what is a miss, whose it
is (slimming's or the package's), and what the error says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.slim import SITE, build_exe, build_so, gcc, link_args, write_dist

from torchslim.errors import BuildError
from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import (
    ClosureError,
    check_closure,
    raise_for_missing,
    upstream_warnings,
)
from torchslim.slim.ledger import Ledger

SYS = "/usr/lib/x86_64-linux-gnu"


def _lib(path: Path, *needs: Path, runpath: str | None = None, soname: str | None = None) -> Path:
    """A shared object that needs ``needs`` (linked by path, recorded by their sonames)."""
    extra = link_args(*needs, runpath=runpath)
    if soname is not None:
        extra.append(f"-Wl,-soname,{soname}")
    return build_so(path, f"int {path.name.split('.')[0]}_f(void) {{ return 1; }}\n", *extra)


def _system() -> tuple[Path, str]:
    if not Path(SYS, "libc.so.6").exists():
        pytest.skip(f"{SYS}/libc.so.6 not present")
    return Path(SYS), SYS


def test_removed_library_is_an_error_that_says_what_to_keep(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libb = _lib(root / "opt/app/lib/libb.so", soname="libb.so")
    _lib(root / "opt/app/lib/liba.so", libb, runpath="$ORIGIN")
    trees = [(root, "/"), _system()]
    assert check_closure(trees, check_prefixes=["/opt"]) == []

    libb.unlink()
    missing = check_closure(trees, check_prefixes=["/opt"], removed={"/opt/app/lib/libb.so": "x"})
    assert [(m.file, m.needed, m.removed_by, m.upstream) for m in missing] == [
        ("/opt/app/lib/liba.so", "libb.so", "x", False)
    ]
    with pytest.raises(ClosureError) as err:
        raise_for_missing(missing)
    assert isinstance(err.value, BuildError)
    first, *rest = str(err.value).splitlines()
    assert first.startswith("slimming removed 1 libraries that kept files need: ")
    assert "--keep /opt/app/lib/libb.so" in first and "allow-missing" in first
    assert rest == [
        "  files of no installed package: opt/app/lib/liba.so needs libb.so (removed by rule x)"
    ]


def test_miss_present_before_slimming_is_the_packages_warning(tmp_path: Path) -> None:
    """torch's test_shim: RUNPATH $ORIGIN in torch/bin, its libraries in torch/lib."""
    root = tmp_path / "root"
    site = root / SITE.lstrip("/")
    lib = _lib(site / "tpkg/lib/libcore.so", soname="libcore.so")
    build_exe(site / "tpkg/bin/test_shim", "int main(void) { return 0; }\n",
              *link_args(lib, runpath="$ORIGIN"))  # fmt: skip
    write_dist(site, "tpkg", ["tpkg/lib/libcore.so", "tpkg/bin/test_shim"])
    removed = {f"{SITE}/tpkg/lib/libgone.so": "torch-test-libraries"}
    missing = check_closure([(root, "/"), _system()], check_prefixes=[SITE], removed=removed)
    assert [(m.file.removeprefix(SITE), m.needed, m.upstream, m.package) for m in missing] == [
        ("/tpkg/bin/test_shim", "libcore.so", True, "tpkg 1.0")
    ]
    assert missing[0].found_at == f"{SITE}/tpkg/lib/libcore.so"
    raise_for_missing(missing)  # no error: slimming did not cause it
    (warning,) = upstream_warnings(missing)
    assert warning.startswith(
        "tpkg 1.0 as published: tpkg/bin/test_shim needs libcore.so "
        "(in the image, not on its search path)"
    )
    assert "--keep" not in warning


def test_every_miss_is_listed_grouped_by_package(tmp_path: Path) -> None:
    root = tmp_path / "root"
    site = root / SITE.lstrip("/")
    deps = [_lib(tmp_path / f"gone/libdep{i}.so", soname=f"libdep{i}.so") for i in range(4)]
    _lib(site / "one/libone.so", *deps[:3], runpath="$ORIGIN")
    _lib(site / "two/libtwo.so", deps[3], runpath="$ORIGIN")
    write_dist(site, "one", ["one/libone.so"])
    write_dist(site, "two", ["two/libtwo.so"])
    removed = {f"{SITE}/one/libdep{i}.so": "rule-a" for i in range(3)}
    removed[f"{SITE}/two/libdep3.so"] = "rule-b"
    missing = check_closure([(root, "/"), _system()], check_prefixes=[SITE], removed=removed)
    assert len(missing) == 4 and all(m.fatal for m in missing)
    with pytest.raises(ClosureError) as err:
        raise_for_missing(missing)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("slimming removed 4 libraries")
    assert lines[1:] == [
        "  one 1.0: one/libone.so needs libdep0.so, libdep1.so, libdep2.so"
        " (removed by rule rule-a)",
        "  two 1.0: two/libtwo.so needs libdep3.so (removed by rule rule-b)",
    ]
    assert "more)" not in str(err.value)


def test_allow_missing_turns_an_error_into_a_note(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libb = _lib(root / "opt/lib/libb.so", soname="libb.so")
    _lib(root / "opt/lib/liba.so", libb, runpath="$ORIGIN")
    libb.unlink()
    missing = check_closure(
        [(root, "/"), _system()],
        check_prefixes=["/opt"],
        removed={"/opt/lib/libb.so": "x"},
        allow_missing={"libb.so": "only the CLI plugin uses it"},
    )
    assert [(m.needed, m.allowed, m.fatal) for m in missing] == [
        ("libb.so", "only the CLI plugin uses it", False)
    ]
    raise_for_missing(missing)


@pytest.mark.parametrize("judge", ["backup", "removed"])
def test_slimming_tells_its_misses_from_upstream(tmp_path: Path, judge: str) -> None:
    """A rule removes ``torch/lib/libdup_test.so`` because a kept copy elsewhere provides the
    name (the safety net does not keep it); ``libuser.so`` found it beside itself."""
    site = tmp_path / SITE.lstrip("/")
    dup = _lib(site / "torch/lib/libdup_test.so", soname="libdup_test.so")
    build_so(
        site / "other/libdup_test.so", "int y(void) { return 0; }\n", "-Wl,-soname,libdup_test.so"
    )
    _lib(site / "torch/lib/libuser.so", dup, runpath="$ORIGIN")
    _lib(site / "torch/lib/libother.so", _lib(tmp_path / "x/libnowhere.so"))
    backup = tmp_path / "bk"
    removed = slim_tree(tmp_path, SITE, ledger=Ledger(), backup=backup)
    assert removed == {f"{SITE}/torch/lib/libdup_test.so": "torch-test-libraries"}
    trees = [(tmp_path, "/"), _system()]
    if judge == "backup":
        missing = check_closure(trees, check_prefixes=[SITE], backup=backup)
    else:
        missing = check_closure(trees, check_prefixes=[SITE], removed=removed)
    verdict = {(m.file.removeprefix(SITE), m.needed): (m.upstream, m.removed_by) for m in missing}
    assert verdict == {
        ("/torch/lib/libuser.so", "libdup_test.so"): (False, "torch-test-libraries"),
        ("/torch/lib/libother.so", "libnowhere.so"): (True, None),
    }
    with pytest.raises(ClosureError, match="slimming removed 1 libraries"):
        raise_for_missing(missing)


def test_without_runpath_a_sibling_does_not_count(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libb = _lib(root / "opt/lib/libb.so", soname="libb.so")
    _lib(root / "opt/lib/liba.so", libb)  # no RUNPATH: the loader never looks in opt/lib
    missing = check_closure([(root, "/"), _system()], check_prefixes=["/opt"])
    assert [(m.needed, m.upstream) for m in missing] == [("libb.so", True)]


def test_system_dirs_and_symlinked_soname(tmp_path: Path) -> None:
    root = tmp_path / "root"
    real = _lib(root / "usr/local/lib/libz9.so.1.2.3", soname="libz9.so.1")
    os.symlink(real.name, root / "usr/local/lib/libz9.so.1")
    _lib(root / "srv/libuser.so", real)  # records DT_NEEDED libz9.so.1
    assert check_closure([(root, "/"), _system()], check_prefixes=["/srv"]) == []
    (root / "usr/local/lib/libz9.so.1").unlink()  # dangling name: soname link gone
    missing = check_closure([(root, "/"), _system()], check_prefixes=["/srv"])
    assert [m.needed for m in missing] == ["libz9.so.1"]
    # without the system trees, libc itself is missing
    assert "libc.so.6" in {m.needed for m in check_closure([(root, "/")], system_lib_dirs=[])}


def test_driver_library_is_injected_not_missing(tmp_path: Path) -> None:
    stub = _lib(tmp_path / "stub/libcuda.so", soname="libcuda.so.1")
    gpu = tmp_path / "site"
    _lib(gpu / "torch/lib/libuses_cuda.so", stub)
    stub.unlink()  # as in an image: the toolkit mounts libcuda.so.1 at run time
    assert check_closure([(gpu, SITE), _system()], check_prefixes=[SITE]) == []
    missing = check_closure(
        [(gpu, SITE), _system()], check_prefixes=[SITE], driver_libs=frozenset()
    )
    assert [m.needed for m in missing] == ["libcuda.so.1"]


def test_torch_preload_list_counts_as_resolved(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dep = _lib(site / "nvidia/cu13/lib/libdep.so.13", soname="libdep.so.13")
    _lib(site / "nvidia/cu13/lib/libuser.so.13", dep)  # no RUNPATH, like libcusolverMg
    (site / "torch").mkdir()
    (site / "torch/version.py").write_text("cuda: Optional[str] = '13.0'\n")
    trees = [(site, SITE), _system()]
    assert [m.needed for m in check_closure(trees, check_prefixes=[SITE])] == ["libdep.so.13"]
    (site / "torch/__init__.py").write_text('cuda_libs = [\n    ("dep", "libdep.so.*[0-9]"),\n]\n')
    assert check_closure(trees, check_prefixes=[SITE]) == []


def test_extensions_are_checked_after_import_torch(tmp_path: Path) -> None:
    """torchvision/_C.so needs libc10.so with no search path: ``import torch`` loaded it."""
    site = tmp_path / "site"
    c10 = _lib(site / "torch/lib/libc10.so", soname="libc10.so")
    build_so(site / "torch/_C.cpython-311-x86_64-linux-gnu.so", "int x(void) { return 0; }\n",
             *link_args(c10, rpath="$ORIGIN/lib"))  # fmt: skip
    _lib(site / "torchvision/_C.so", c10)
    trees = [(site, SITE), _system()]
    assert [(m.file, m.needed) for m in check_closure(trees, check_prefixes=[SITE])] == [
        (f"{SITE}/torchvision/_C.so", "libc10.so")
    ]  # no torch/__init__.py: torch is not importable, nothing loaded it
    (site / "torch/__init__.py").write_text("from torch._C import *\n")
    assert check_closure(trees, check_prefixes=[SITE]) == []


def test_interpreter_rpath_applies_to_extension_dependencies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libpy = _lib(root / "usr/local/pylib/libpyhelper.so", soname="libpyhelper.so")
    build_exe(root / "usr/local/bin/python3", "int main(void) { return 0; }\n",
              *link_args(rpath="$ORIGIN/../pylib"))  # fmt: skip
    _lib(root / SITE.lstrip("/") / "pkg/_ext.cpython-311-x86_64-linux-gnu.so", libpy)
    trees = [(root, "/"), _system()]
    assert [m.needed for m in check_closure(trees, check_prefixes=[SITE])] == ["libpyhelper.so"]
    assert check_closure(trees, check_prefixes=[SITE], interpreter="/usr/local/bin/python3") == []


def test_optional_plugins_warn_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    verbs = _lib(tmp_path / "host/libibverbs.so.1", soname="libibverbs.so.1")
    _lib(site / "nvidia/cu13/lib/libcufile_rdma.so.1", verbs)
    (site / "torch").mkdir()
    (site / "torch/__init__.py").write_text("")
    missing = check_closure(
        [(site, SITE), _system()], check_prefixes=[SITE], removed={"/x/libibverbs.so.1": "r"}
    )
    assert [(m.needed, m.optional, m.fatal) for m in missing] == [("libibverbs.so.1", True, False)]
    raise_for_missing(missing)  # a warning, no error


def test_executable_with_rpath(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libb = _lib(root / "app/lib/libb.so", soname="libb.so")
    src = tmp_path / "main.c"
    src.write_text("int libb_f(void); int main(void) { return libb_f(); }\n")
    exe = root / "app/bin/tool"
    exe.parent.mkdir(parents=True)
    gcc(["-o", str(exe), str(src), f"-L{libb.parent}", "-l:libb.so",
         "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib"])  # fmt: skip
    assert check_closure([(root, "/"), _system()], check_prefixes=["/app"]) == []
    libb.unlink()
    assert [m.file for m in check_closure([(root, "/"), _system()], check_prefixes=["/app"])] == [
        "/app/bin/tool"
    ]
