"""The ELF closure check on real shared objects built with gcc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.slim import build_so, gcc

from torchslim.errors import BuildError
from torchslim.slim.closure import ClosureError, check_closure, raise_for_missing

SYS = "/usr/lib/x86_64-linux-gnu"
SITE = "/usr/local/lib/python3.11/site-packages"


def _lib(path: Path, *needs: Path, runpath: str | None = None, soname: str | None = None) -> Path:
    """A shared object that needs ``needs`` (linked by path, recorded by their sonames)."""
    extra: list[str] = ["-Wl,--no-as-needed"]
    for dep in needs:
        extra += [f"-L{dep.parent}", f"-l:{dep.name}"]
    if runpath is not None:
        extra.append(f"-Wl,--enable-new-dtags,-rpath,{runpath}")
    if soname is not None:
        extra.append(f"-Wl,-soname,{soname}")
    return build_so(path, f"int {path.name.split('.')[0]}_f(void) {{ return 1; }}\n", *extra)


def _system() -> tuple[Path, str]:
    if not Path(SYS, "libc.so.6").exists():
        pytest.skip(f"{SYS}/libc.so.6 not present")
    return Path(SYS), SYS


def test_runpath_origin_resolves_then_missing_names_both(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libb = _lib(root / "opt/app/lib/libb.so", soname="libb.so")
    _lib(root / "opt/app/lib/liba.so", libb, runpath="$ORIGIN")
    trees = [(root, "/"), _system()]
    assert check_closure(trees, check_prefixes=["/opt"]) == []

    libb.unlink()
    missing = check_closure(trees, check_prefixes=["/opt"], removed={"/opt/app/lib/libb.so": "x"})
    assert [(m.file, m.needed, m.removed_by) for m in missing] == [
        ("/opt/app/lib/liba.so", "libb.so", "x")
    ]
    with pytest.raises(ClosureError) as err:
        raise_for_missing(missing)
    assert isinstance(err.value, BuildError)
    assert str(err.value).startswith(
        "opt/app/lib/liba.so needs libb.so, which is not in the image (removed by rule x)"
    )
    assert "\n" not in str(err.value)


def test_without_runpath_a_sibling_does_not_count(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libb = _lib(root / "opt/lib/libb.so", soname="libb.so")
    _lib(root / "opt/lib/liba.so", libb)  # no RUNPATH: the loader never looks in opt/lib
    missing = check_closure([(root, "/"), _system()], check_prefixes=["/opt"])
    assert [m.needed for m in missing] == ["libb.so"]


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


def test_optional_plugins_warn_only(tmp_path: Path) -> None:
    site = tmp_path / "site"
    verbs = _lib(tmp_path / "host/libibverbs.so.1", soname="libibverbs.so.1")
    _lib(site / "nvidia/cu13/lib/libcufile_rdma.so.1", verbs)
    (site / "torch").mkdir()
    (site / "torch/__init__.py").write_text("")
    missing = check_closure([(site, SITE), _system()], check_prefixes=[SITE])
    assert [(m.needed, m.optional) for m in missing] == [("libibverbs.so.1", True)]
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
