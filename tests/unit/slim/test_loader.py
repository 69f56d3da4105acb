"""The ld.so model against the real ld.so: gcc-built programs and libraries, each case
loaded both by the model and for real (a program run, ``ctypes.CDLL`` in a clean Python)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.slim import build_exe, build_so, link_args, real_dlopen, real_run

from torchslim.slim.closure import image_system
from torchslim.slim.image import ImageView
from torchslim.slim.loader import Miss, Process

SYS = "/usr/lib/x86_64-linux-gnu"
MAIN = "int f(void);\nint main(void) { return 0; }\n"


def so(path: Path, *needs: Path, rpath: str | None = None, runpath: str | None = None) -> Path:
    """A library whose DT_NEEDED are ``needs`` (by soname = file name)."""
    stem = path.name.split(".")[0].replace("-", "_")
    args = link_args(*needs, rpath=rpath, runpath=runpath)
    return build_so(
        path, f"int {stem}_f(void) {{ return 0; }}\n", f"-Wl,-soname,{path.name}", *args
    )


def exe(path: Path, *needs: Path, rpath: str | None = None, runpath: str | None = None) -> Path:
    links = [f"-Wl,-rpath-link,{d.parent}" for d in needs]
    args = link_args(*needs, rpath=rpath, runpath=runpath)
    return build_exe(path, "int main(void) { return 0; }\n", *args, *links)


def _view(tmp: Path) -> ImageView:
    if not Path(SYS, "libc.so.6").exists():
        pytest.skip(f"{SYS}/libc.so.6 not present")
    return ImageView([(tmp, str(tmp)), (Path(SYS), SYS)])  # image paths = host paths


def model_run(tmp: Path, program: Path) -> list[Miss]:
    return Process.run(image_system(_view(tmp)), str(program))[1]


def model_dlopen(tmp: Path, *paths: Path) -> list[Miss]:
    proc = Process(image_system(_view(tmp)))
    return [m for p in paths for m in proc.dlopen(str(p))]


def _case_rpath_inherited(t: Path) -> tuple[Path, bool]:
    libb = so(t / "app/lib/libb.so")
    liba = so(t / "app/lib/liba.so", libb)  # no search path of its own
    return exe(t / "app/bin/tool", liba, rpath="$ORIGIN/../lib"), True


def _case_runpath_not_inherited(t: Path) -> tuple[Path, bool]:
    libb = so(t / "app/lib/libb.so")
    liba = so(t / "app/lib/liba.so", libb)
    return exe(t / "app/bin/tool", liba, runpath="$ORIGIN/../lib"), False


def _case_runpath_in_chain_drops_rpaths(t: Path) -> tuple[Path, bool]:
    libb = so(t / "app/lib/libb.so")
    liba = so(t / "app/lib/liba.so", libb, runpath="$ORIGIN/../elsewhere")
    return exe(t / "app/bin/tool", liba, rpath="$ORIGIN/../lib"), False


def _case_dollar_lib(t: Path) -> tuple[Path, bool]:
    liba = so(t / "app/lib/x86_64-linux-gnu/liba.so")
    return exe(t / "app/bin/tool", liba, rpath="$ORIGIN/../$LIB"), True


PROGRAMS: dict[str, Callable[[Path], tuple[Path, bool]]] = {
    "rpath-inherited-by-dependency": _case_rpath_inherited,
    "runpath-not-inherited": _case_runpath_not_inherited,
    "runpath-in-chain-drops-all-rpaths": _case_runpath_in_chain_drops_rpaths,
    "dollar-lib": _case_dollar_lib,
}


@pytest.mark.parametrize("case", sorted(PROGRAMS))
def test_program_search_matches_ld_so(tmp_path: Path, case: str) -> None:
    program, loads = PROGRAMS[case](tmp_path)
    real = real_run(program)
    assert (real.returncode == 0) is loads, real.stderr
    assert (model_run(tmp_path, program) == []) is loads


@pytest.mark.parametrize(("flag", "loads"), [("rpath", True), ("runpath", False)])
def test_extension_rpath_reaches_sibling_of_its_dependency(
    tmp_path: Path, flag: str, loads: bool
) -> None:
    """Pillow 10.1's layout: ``_imagingft`` has DT_RPATH ``$ORIGIN/../Pillow.libs``;
    ``libfreetype`` there has no search path and needs ``libbrotlidec`` next to it."""
    libs = tmp_path / "site/Pillow.libs"
    brotli = so(libs / "libbrotlidec-56da25b1.so.1")
    freetype = so(libs / "libfreetype-2f4dfa15.so.6", brotli)
    paths = {flag: "$ORIGIN/../Pillow.libs"}
    ext = so(tmp_path / "site/PIL/_imagingft.cpython-311-x86_64-linux-gnu.so", freetype, **paths)
    real = real_dlopen(ext)
    assert (real.returncode == 0) is loads, real.stderr
    assert (model_dlopen(tmp_path, ext) == []) is loads
    if not loads:
        assert model_dlopen(tmp_path, ext) == [Miss(str(freetype), brotli.name)]


def test_origin_is_the_directory_of_the_object_carrying_the_entry(tmp_path: Path) -> None:
    """``$ORIGIN/libs`` of the extension, not of the dependency that inherits it."""
    deep = so(tmp_path / "pkg/libs/libdeep.so")
    dep = so(tmp_path / "pkg/libs/libdep.so", deep)
    ext = so(tmp_path / "pkg/_ext.abi3.so", dep, rpath="$ORIGIN/libs")
    assert real_dlopen(ext).returncode == 0
    assert model_dlopen(tmp_path, ext) == []


def test_loaded_object_satisfies_a_later_need_by_soname(tmp_path: Path) -> None:
    """``import torch`` loads ``libc10.so`` through ``torch/_C``'s RPATH; torchvision's
    ``_C.so`` (no search path) then finds it among the loaded objects."""
    c10 = so(tmp_path / "site/torch/lib/libc10.so")
    torch_c = so(
        tmp_path / "site/torch/_C.cpython-311-x86_64-linux-gnu.so", c10, rpath="$ORIGIN/lib"
    )
    vision = so(tmp_path / "site/torchvision/_C.so", c10)
    assert real_dlopen(vision).returncode != 0
    assert model_dlopen(tmp_path, vision) == [Miss(str(vision), "libc10.so")]
    assert real_dlopen(torch_c, vision).returncode == 0
    assert model_dlopen(tmp_path, torch_c, vision) == []


def test_soname_not_file_name_identifies_a_loaded_library(tmp_path: Path) -> None:
    """A preload opened by path (``libfoo-1a2b.so.1``, soname ``libfoo.so.1``) satisfies
    ``DT_NEEDED libfoo.so.1``; its file name alone would not."""
    real_name = tmp_path / "site/x.libs/libfoo-1a2b.so.1"
    real_name.parent.mkdir(parents=True)
    build_so(real_name, "int foo(void) { return 1; }\n", "-Wl,-soname,libfoo.so.1")
    alias = tmp_path / "link/libfoo.so.1"  # only to link the user against the soname
    alias.parent.mkdir()
    alias.symlink_to(real_name)
    user = so(tmp_path / "site/user/libuser.so", alias)
    alias.unlink()
    assert real_dlopen(user).returncode != 0
    assert real_dlopen(real_name, user).returncode == 0
    assert model_dlopen(tmp_path, user) == [Miss(str(user), "libfoo.so.1")]
    assert model_dlopen(tmp_path, real_name, user) == []


def test_wrong_machine_is_skipped_like_ld_so(tmp_path: Path) -> None:
    """A 32-bit or foreign file of the right name in a search dir does not count."""
    lib = tmp_path / "app/lib/libb.so"
    lib.parent.mkdir(parents=True)
    real = so(tmp_path / "real/libb.so")
    user = so(tmp_path / "app/libuser.so", real, rpath="$ORIGIN/lib")
    head = bytearray(real.read_bytes())
    head[18] = 183  # e_machine = EM_AARCH64
    lib.write_bytes(bytes(head))
    assert real_dlopen(user).returncode != 0
    assert model_dlopen(tmp_path, user) == [Miss(str(user), "libb.so")]
