"""Helpers for the slim tests: slices of the real torch 2.13 CPU wheel, gcc-built ELF files.

(A uniquely named module rather than conftest.py, so the tests can import it.)
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

SITE = "/usr/local/lib/python3.11/dist-packages"
TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
TORCH_DIST = "torch-2.13.0+cpu.dist-info"

# A small but real slice of the wheel (~60 MB): every rule that concerns torch fires on it.
TORCH_LIB_KEPT = (
    "torch/lib/libc10.so",
    "torch/lib/libshm.so",
    "torch/lib/libtorch.so",
    "torch/lib/libtorch_global_deps.so",
    "torch/lib/libgomp.so.1",
)
TORCH_LIB_TEST = (
    "torch/lib/libjitbackend_test.so",
    "torch/lib/libtorchbind_test.so",
    "torch/lib/libbackend_with_compiler.so",
    "torch/lib/libaoti_custom_ops.so",
)
TORCH_TEST_SAMPLE = (
    "torch/test/c10_intrusive_ptr_benchmark",
    "torch/test/c10_StreamGuard_test",
    "torch/test/c10_string_view_test",
)


def torch_slice_member(name: str) -> bool:
    return (
        name.startswith(("torch/bin/", "torch/share/cmake/", "torch/fx/passes/tests/"))
        or name.startswith(("torch/include/c10/test/", "torch/include/c10/macros/"))
        or name.startswith(("torch/lib/libshm/", TORCH_DIST + "/"))
        or name in TORCH_LIB_KEPT + TORCH_LIB_TEST + TORCH_TEST_SAMPLE
        or name in ("torch/testing/__init__.py", "torch/testing/_comparison.py")
        or name
        in ("torch/testing/_internal/__init__.py", "torch/testing/_internal/common_utils.py")
        or name in ("torch/_VF.pyi", "torch/_C/__init__.pyi")
        or name in ("torch/__init__.py", "torch/_C.cpython-311-x86_64-linux-gnu.so")
    )


def unzip(wheel: Path, dest: Path, select: Callable[[str], bool]) -> list[str]:
    """Extract the members ``select`` accepts, with their permission bits; return names."""
    names = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir() or not select(info.filename):
                continue
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
            names.append(info.filename)
    return names


def clone_site(template: Path, root: Path) -> Path:
    """Copy a template site-packages into ``root`` + SITE: hard links (slimming unlinks or
    replaces files, never writes into them), real copies for RECORD (rewritten in place)."""
    site = root / SITE.lstrip("/")
    shutil.copytree(template, site, copy_function=os.link)
    for record in site.glob("*.dist-info/RECORD"):
        data = record.read_bytes()
        record.unlink()
        record.write_bytes(data)
    return site


def tree_bytes(path: Path) -> int:
    """Bytes of all regular files below ``path``, package metadata aside (RECORD shrinks
    by its dropped lines, which no rule claims)."""
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and not p.is_symlink() and ".dist-info" not in p.parent.as_posix()
    )


def record_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def write_dist(site: Path, name: str, files: Iterable[str]) -> Path:
    """Write ``name-1.0.dist-info`` whose RECORD lists ``files`` (which must exist)."""
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = []
    for rel in sorted(files) + [f"{dist.name}/METADATA"]:
        p = site / rel
        lines.append(f"{rel},{record_hash(p)},{p.stat().st_size}\n")
    lines.append(f"{dist.name}/RECORD,,\n")
    (dist / "RECORD").write_text("".join(lines))
    return dist


def gcc(args: list[str]) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    subprocess.run(["gcc", *args], check=True, capture_output=True)


def build_so(path: Path, source: str, *extra: str) -> Path:
    """Compile ``source`` (C) into a shared object with debug info and a symbol table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_name(path.name + ".c")
    src.write_text(source)
    gcc(["-shared", "-fPIC", "-g", "-O0", "-o", str(path), str(src), *extra])
    src.unlink()
    return path


# The torch 2.14.1 CUDA 13 stack in the local indexes (/opt/pypi*/files); bench/cuda_slim.py
# uses the same list.
CUDA_WHEEL_GLOBS = (
    "torch-2.14.1-*.whl",
    "triton-3.8.0-*.whl",
    "cuda_toolkit-*.whl",
    # what torch 2.14.1's Requires-Dist (and cuda-toolkit's extras it names) pull in
    *(
        f"nvidia_{lib}-*.whl"
        for lib in (
            "cublas",
            "cuda_cupti",
            "cuda_nvrtc",
            "cuda_runtime",
            "cudnn_cu13",
            "cufft",
            "cufile",
            "curand",
            "cusolver",
            "cusparse",
            "cusparselt_cu13",
            "nccl_cu13",
            "nvjitlink",
            "nvshmem_cu13",
            "nvtx",
        )
    ),
)


def build_exe(path: Path, source: str, *extra: str) -> Path:
    """Compile ``source`` (C) into a program."""
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_name(path.name + ".c")
    src.write_text(source)
    gcc(["-o", str(path), str(src), *extra])
    src.unlink()
    return path


def link_args(*needs: Path, rpath: str | None = None, runpath: str | None = None) -> list[str]:
    """gcc flags: DT_NEEDED on each of ``needs`` (by soname) and the search paths asked for."""
    out = ["-Wl,--no-as-needed"]
    for dep in needs:
        out += [f"-L{dep.parent}", f"-l:{dep.name}"]
    if rpath is not None:
        out.append(f"-Wl,--disable-new-dtags,-rpath,{rpath}")
    if runpath is not None:
        out.append(f"-Wl,--enable-new-dtags,-rpath,{runpath}")
    return out


# The Debian interpreter: no DT_RPATH/RUNPATH of its own, like the images' python.
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def real_dlopen(*paths: Path) -> subprocess.CompletedProcess[str]:
    """``ctypes.CDLL`` each path in turn in a clean Python process (no LD_LIBRARY_PATH)."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} not present")
    code = "import ctypes, sys\nfor p in sys.argv[1:]:\n    ctypes.CDLL(p)\n"
    return subprocess.run(
        [str(SYSTEM_PYTHON), "-c", code, *map(str, paths)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )


def real_run(exe: Path) -> subprocess.CompletedProcess[str]:
    """Run a program with a clean environment."""
    return subprocess.run(
        [str(exe)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False
    )


PT_LOAD = 1


def shift_load_offset(path: Path, index: int, delta: int) -> None:
    """Move the file offset of the ``index``-th PT_LOAD by ``delta`` bytes (ELF64 LE), the
    way GNU strip leaves numpy 2.x's OpenBLAS: address and offset no longer congruent."""
    data = bytearray(path.read_bytes())
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    loads = [
        phoff + i * phentsize
        for i in range(phnum)
        if int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little")
        == PT_LOAD
    ]
    at = loads[index] + 8  # p_offset
    value = int.from_bytes(data[at : at + 8], "little") + delta
    data[at : at + 8] = value.to_bytes(8, "little")
    path.write_bytes(bytes(data))
