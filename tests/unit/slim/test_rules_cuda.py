"""CUDA slimming rules per profile, on a small gcc-built nvidia/torch/triton layout; and
(e2e) on the real torch 2.13 CPU wheel and the torch 2.14.1 CUDA 13 stack."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.slim import CUDA_WHEEL_GLOBS, SITE, TORCH_WHEEL, build_so, unzip

from torchslim.slim.apply import slim_tree
from torchslim.slim.closure import check_closure, raise_for_missing
from torchslim.slim.ledger import Ledger

SYS = "/usr/lib/x86_64-linux-gnu"
RPATH = "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../../nvidia/cu13/lib"


def _so(site: Path, rel: str, *needs: str, extra: tuple[str, ...] = ()) -> Path:
    """A shared object at ``site/rel`` whose DT_NEEDED are the (site-relative) ``needs``."""
    args = ["-Wl,--no-as-needed", *extra]
    for dep in needs:
        p = site / dep
        args += [f"-L{p.parent}", f"-l:{p.name}"]
    name = rel.rsplit("/", 1)[-1]
    return build_so(site / rel, "int f(void) { return 0; }\n", f"-Wl,-soname,{name}", *args)


@pytest.fixture(scope="module")
def fake_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("cuda-stack")
    lib = "nvidia/cu13/lib/"
    _so(site, lib + "libcupti.so.13")
    _so(site, lib + "libcufile.so.0")
    _so(site, lib + "libnccl.so.2")
    _so(site, lib + "libcusolverMg.so.12")
    _so(site, lib + "libnvperf_host.so")
    _so(site, lib + "libcufile_rdma.so.1", lib + "libcufile.so.0")
    _so(site, "nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3")
    (site / "nvidia/nvshmem/lib/libnvshmem_device.bc").write_bytes(b"BC\xc0\xde")
    (site / "nvidia/cu13/include").mkdir(parents=True)
    (site / "nvidia/cu13/include/cuda_fp16.h").write_text("/* kept: NVRTC includes it */\n")
    (site / "nvidia/cudnn/include").mkdir(parents=True)
    (site / "nvidia/cudnn/include/cudnn.h").write_text("/* compile only */\n")
    _so(site, "triton/backends/nvidia/lib/cupti/libcupti.so.13")
    _so(site, "triton/_C/libtriton.so")
    (site / "triton/__init__.py").write_text("")
    (site / "torch").mkdir()
    (site / "torch/version.py").write_text("cuda: Optional[str] = '13.0'\n")
    (site / "torch/__init__.py").write_text(
        'cuda_libs = [\n    ("cuda_cupti", "libcupti.so.*[0-9]"),\n'
        '    ("nccl", "libnccl.so.*[0-9]"),\n    ("cufile", "libcufile.so.*[0-9]"),\n]\n'
    )
    # like libtorch_cpu / libtorch_cuda: NEED cupti, cufile, nccl through an RPATH
    _so(
        site,
        "torch/lib/libtorch_cuda.so",
        lib + "libcupti.so.13",
        lib + "libcufile.so.0",
        lib + "libnccl.so.2",
        extra=(RPATH,),
    )
    return site


def _slim(template: Path, root: Path, profile: str) -> tuple[Path, Ledger, dict[str, str]]:
    site = root / SITE.lstrip("/")
    shutil.copytree(template, site)
    ledger = Ledger()
    removed = slim_tree(root, SITE, profile=profile, ledger=ledger)
    return site, ledger, removed


def _present(site: Path) -> set[str]:
    return {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}


NEEDED_BY_TORCH = {
    "nvidia/cu13/lib/libcupti.so.13",
    "nvidia/cu13/lib/libcufile.so.0",
    "nvidia/cu13/lib/libnccl.so.2",
}


@pytest.mark.parametrize(
    ("profile", "gone", "kept"),
    [
        (
            "inference",
            {
                "nvidia/cu13/lib/libcusolverMg.so.12",
                "nvidia/cu13/lib/libnvperf_host.so",
                "nvidia/cu13/lib/libcufile_rdma.so.1",
                "nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3",
                "nvidia/nvshmem/lib/libnvshmem_device.bc",
                "nvidia/cudnn/include/cudnn.h",
                "triton/_C/libtriton.so",
                # a kept library needs libcupti.so.13, but the kept nvidia copy provides it
                "triton/backends/nvidia/lib/cupti/libcupti.so.13",
            },
            NEEDED_BY_TORCH | {"nvidia/cu13/include/cuda_fp16.h"},
        ),
        (
            "compile",
            {
                "nvidia/cu13/lib/libcusolverMg.so.12",
                "nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3",
            },
            NEEDED_BY_TORCH
            | {
                "triton/_C/libtriton.so",
                "nvidia/cudnn/include/cudnn.h",
                "nvidia/nvshmem/lib/libnvshmem_device.bc",
            },
        ),
        (
            "distributed",
            {"nvidia/cu13/lib/libcusolverMg.so.12", "triton/_C/libtriton.so"},
            NEEDED_BY_TORCH
            | {
                "nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3",
                "nvidia/nvshmem/lib/libnvshmem_device.bc",
            },
        ),
        ("full", set(), NEEDED_BY_TORCH | {"nvidia/cu13/lib/libcusolverMg.so.12"}),
    ],
)
def test_profiles_keep_what_torch_needs(
    fake_stack: Path, tmp_path: Path, profile: str, gone: set[str], kept: set[str]
) -> None:
    before = _present(fake_stack)
    site, ledger, removed = _slim(fake_stack, tmp_path, profile)
    after = _present(site)
    assert gone <= before - after, gone - (before - after)
    assert kept <= after, kept - after
    assert {p.removeprefix(SITE + "/") for p in removed} == before - after
    # whatever was removed, the kept ELF files still resolve (rdma/ucx plugins aside)
    trees = [(tmp_path, "/")] + ([(Path(SYS), SYS)] if Path(SYS).is_dir() else [])
    missing = check_closure(trees, check_prefixes=[SITE], removed=removed)
    assert [m for m in missing if not m.optional and m.needed != "libc.so.6"] == []
    if profile == "full":
        assert {rule for rule, *_ in ledger.by_rule()} <= {"pycache"}


def test_preloaded_library_is_never_removed(tmp_path: Path) -> None:
    site = tmp_path / "tpl"
    _so(site, "nvidia/cu13/lib/libcusolverMg.so.12")
    (site / "torch").mkdir()
    (site / "torch/__init__.py").write_text('x = [("cusolver", "libcusolverMg.so.*[0-9]")]\n')
    (site / "torch/version.py").write_text("cuda = '13.0'\n")
    slimmed, _, removed = _slim(site, tmp_path / "root", "inference")
    assert (slimmed / "nvidia/cu13/lib/libcusolverMg.so.12").exists()
    assert not removed


# --- real wheels ---------------------------------------------------------------------


@pytest.mark.e2e
def test_cpu_wheel_closure_after_inference(tmp_path: Path) -> None:
    if not TORCH_WHEEL.exists() or not Path(SYS).is_dir():
        pytest.skip(f"{TORCH_WHEEL} or {SYS} not present")
    site = tmp_path / SITE.lstrip("/")
    unzip(TORCH_WHEEL, site, lambda _: True)
    removed = slim_tree(tmp_path, SITE, profile="inference", ledger=Ledger())
    missing = check_closure([(tmp_path, "/"), (Path(SYS), SYS)], check_prefixes=[SITE])
    assert missing == [], [m.message() for m in missing]
    raise_for_missing(missing)
    assert removed  # tests, headers etc. did go


@pytest.mark.e2e
def test_cuda_stack_closure_after_inference(tmp_path: Path) -> None:
    """torch 2.14.1 + its nvidia-* wheels + Triton + torchvision 0.29.1 (~5 GB unpacked,
    ~1 min). torchvision/_C_stable.so needs libc10.so etc. with no search path of its
    own: checked after ``import torch``, which loaded them."""
    wheels = sorted(
        {w for d in Path("/opt").glob("pypi*/files") for g in CUDA_WHEEL_GLOBS for w in d.glob(g)}
    )
    vision = sorted(Path("/opt").glob("pypi*/files/torchvision-0.29.1-*.whl"))
    if not any(w.name.startswith("torch-") for w in wheels) or not vision:
        pytest.skip("torch 2.14.1 / torchvision 0.29.1 wheels not in /opt/pypi*/files")
    if not Path(SYS).is_dir():
        pytest.skip(f"{SYS} not present")
    site = tmp_path / SITE.lstrip("/")
    for wheel in [*wheels, vision[0]]:
        unzip(wheel, site, lambda _: True)
    trees = [(tmp_path, "/"), (Path(SYS), SYS)]
    published = check_closure(trees, check_prefixes=[SITE])
    assert [m.message() for m in published if not m.optional] == []
    backup = tmp_path / "backup"
    removed = slim_tree(tmp_path, SITE, profile="inference", ledger=Ledger(), backup=backup)
    missing = check_closure(trees, check_prefixes=[SITE], removed=removed, backup=backup)
    assert [m.message() for m in missing if not m.optional] == []
    raise_for_missing(missing)
    kept = {p.relative_to(site).as_posix() for p in site.rglob("*.so*")}
    assert "nvidia/nccl/lib/libnccl.so.2" in kept  # libtorch_cuda needs it
    assert "nvidia/cu13/lib/libcupti.so.13" in kept  # libtorch_cpu needs it
    assert {"torchvision/_C_stable.so", "torchvision/image_stable.so"} <= kept
    assert not (site / "triton").exists() or not any((site / "triton").rglob("*.so"))
    assert any(r == "triton" for r in removed.values())
