"""Named slimming rules tied to profiles.

A rule says *what* it removes (globs relative to site-packages), *why* (one line), and
under which profiles those files are *kept*. Rules never look outside site-packages and
never touch ``*.dist-info`` (RECORD, METADATA, licenses). Adding a rule (e.g. the CUDA
library groups: NCCL kept under ``distributed``, CUPTI, cuFile, Triton kept under
``compile``) is one more ``Rule`` in ``RULES`` plus its test.

Files are matched by the first rule in ``RULES`` order whose globs and guard accept them.

CUDA rules (measured on torch 2.14.1 + its CUDA 13 nvidia-* wheels + Triton 3.8; see
``bench/cuda_slim.py``). What can NOT go, and why: every library ``libtorch_cpu``,
``libtorch_cuda``, ``libtorch_cuda_linalg``, ``libtorch_nvshmem`` or ``libtorch_python``
lists in DT_NEEDED (cudart, cublas/cublasLt, cudnn, cufft, curand, cusolver, cusparse,
cusparseLt, nvrtc, cupti, cufile, NCCL, libnvshmem_host) and everything torch's own
preload list in ``torch/__init__.py`` names (``slim.preload``; nvJitLink and
nvrtc-builtins are only there) -- so NCCL, cuFile and CUPTI stay even under ``inference``;
the rules below only take their unused companions. cuDNN's sub-libraries are
``dlopen``ed by ``libcudnn.so.9`` by need, so all of them stay. The apply step's
DT_NEEDED safety net and the closure check (``slim.closure``) guard every rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from torchslim.errors import ConfigError
from torchslim.slim.globs import glob_match
from torchslim.slim.site import SiteView

PROFILES: dict[str, str] = {
    "inference": "run a trained model: drop tests, tools, headers, static libs; strip symbols",
    "compile": "inference plus what torch.compile needs: torch/include, CMake config, Triton",
    "distributed": "inference plus multi-process/multi-GPU parts (NCCL, NVSHMEM)",
    "full": "remove nothing but bytecode caches (the --no-slim baseline of a wheel install)",
    # Opt-in: needs the served proof (slim.used); what it drops is listed as steps, below.
    "used": "inference, then drop the distributions and modules the served proof never imported",
}
DEFAULT_PROFILE = "inference"

Guard = Callable[[SiteView, str], bool]
Action = Literal["remove", "strip"]

# Files no rule may touch: package metadata (pip / importlib.metadata read it; licenses
# inside carry ``test`` directories of their own).
PROTECTED: tuple[str, ...] = ("*.dist-info/**",)


@dataclass(frozen=True)
class Rule:
    """One named slimming rule. ``matches`` is the path test; ``guard`` looks at the file."""

    id: str
    why: str
    keep_in: frozenset[str]
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    action: Action = "remove"
    guard: Guard | None = field(default=None, compare=False, repr=False)
    # Decided by path alone, and no file of it is ever loaded (headers, stubs, bytecode,
    # static archives, CMake files, device bitcode): a build does not write such files at
    # all while installing (``slim.apply.InstallSkips``) rather than write and delete them.
    at_install: bool = False

    def matches(self, relpath: str) -> bool:
        """True when a path relative to site-packages falls under this rule's globs."""
        if any(glob_match(p, relpath) for p in PROTECTED + self.exclude):
            return False
        return any(glob_match(p, relpath) for p in self.patterns)

    def applies(self, view: SiteView, relpath: str) -> bool:
        """``matches`` plus the guard's look at the file itself."""
        return self.matches(relpath) and (self.guard is None or self.guard(view, relpath))

    def active_in(self, profile: str) -> bool:
        """True when this rule removes (or strips) files under ``profile``."""
        return profile not in self.keep_in


def _is_unused_test_suite(view: SiteView, relpath: str) -> bool:
    suite = view.test_suite_dir(relpath)
    return suite is not None and view.is_removable_test_suite(suite)


def _is_strippable_elf(view: SiteView, relpath: str) -> bool:
    info = view.elf(relpath)
    return info is not None and info.strippable


def _not_preloaded(view: SiteView, relpath: str) -> bool:
    return relpath not in view.torch_preloads()


_ALL_BUT_FULL = frozenset({"full"})

RULES: tuple[Rule, ...] = (
    Rule(
        id="pycache",
        why="bytecode shipped in wheels or left by installs; replaced by deterministic .pyc",
        keep_in=frozenset(),
        patterns=("**/__pycache__/**", "**/*.pyc", "**/*.pyo"),
        at_install=True,
    ),
    Rule(
        id="torch-test-binaries",
        why="torch/test holds C++ unit-test executables; nothing imports or runs them",
        keep_in=_ALL_BUT_FULL,
        patterns=("torch/test/**",),
    ),
    Rule(
        id="torch-bin-tests",
        why="torch/bin holds C++ tests, c10d store tests and protoc; only torch_shm_manager runs",
        keep_in=_ALL_BUT_FULL,
        patterns=("torch/bin/**",),
        # torch.multiprocessing spawns it to share tensors between processes.
        exclude=("torch/bin/torch_shm_manager",),
    ),
    Rule(
        id="torch-test-libraries",
        why="shared libraries built only for torch's own tests (TorchBind, JIT backends, AOTI)",
        keep_in=_ALL_BUT_FULL,
        patterns=(
            "torch/lib/*_test.so",
            "torch/lib/libtorchbind_test.so",
            "torch/lib/libjitbackend_test.so",
            "torch/lib/libbackend_with_compiler.so",
            "torch/lib/libaoti_custom_ops.so",
        ),
    ),
    Rule(
        id="torch-headers",
        why="C++ headers, needed only to build extensions or by torch.compile's C++ codegen",
        keep_in=frozenset({"compile", "full"}),
        patterns=("torch/include/**", "torch/lib/libshm/*.h", "torch/lib/libshm_windows/*.h"),
        at_install=True,
    ),
    Rule(
        id="torch-cmake-config",
        why="CMake package files for building against libtorch; unused at run time",
        keep_in=frozenset({"compile", "full"}),
        patterns=("torch/share/cmake/**",),
        at_install=True,
    ),
    Rule(
        id="type-stubs",
        why="type stubs (.pyi) are read by type checkers; the import system never opens them",
        keep_in=_ALL_BUT_FULL,
        patterns=("**/*.pyi",),
        # Tools that read stubs at run time (completion, checkers) keep theirs.
        exclude=("jedi/**", "mypy/**", "typeshed_client/**", "pytype/**", "pyright/**"),
        at_install=True,
    ),
    Rule(
        id="static-libraries",
        why="static archives are linked at build time; a running process never loads them",
        keep_in=_ALL_BUT_FULL,
        patterns=("**/*.a",),
        at_install=True,
    ),
    Rule(
        id="cuda-unused-libraries",
        # Evidence: no ELF in torch, nvidia-* or triton lists them in DT_NEEDED, torch's
        # preload list does not name them, and libnvrtc.so.13 never mentions "alt.so".
        why="CUDA libraries nothing needs or preloads: cusolverMg, cufftw, nvblas, nvrtc.alt",
        keep_in=_ALL_BUT_FULL,
        patterns=(
            "nvidia/*/lib/libcusolverMg.so*",
            "nvidia/*/lib/libcufftw.so*",
            "nvidia/*/lib/libnvblas.so*",
            "nvidia/*/lib/libnvrtc.alt.so*",
            "nvidia/*/lib/libnvrtc-builtins.alt.so*",
        ),
        guard=_not_preloaded,
    ),
    Rule(
        id="cupti-profiler-extras",
        # Evidence: no DT_NEEDED names them; libcupti.so (kept: libtorch_cpu needs it)
        # names libnvperf_host.so only as a dlopen string for its Profiling/PM APIs.
        why="CUPTI profiling-API helpers (nvperf, PC sampling, checkpoint) that libcupti dlopens",
        keep_in=_ALL_BUT_FULL,
        patterns=(
            "nvidia/*/lib/libnvperf_host.so*",
            "nvidia/*/lib/libnvperf_target.so*",
            "nvidia/*/lib/libpcsamplingutil.so*",
            "nvidia/*/lib/libcheckpoint.so*",
        ),
        guard=_not_preloaded,
    ),
    Rule(
        id="cufile-rdma",
        # Evidence: DT_NEEDED libmlx5/librdmacm/libibverbs, absent from every slim base;
        # nothing needs libcufile_rdma. libcufile.so.0 stays (libtorch_cuda needs it).
        why="GPUDirect Storage RDMA plugin of cuFile; needs host rdma-core (libibverbs, libmlx5)",
        keep_in=_ALL_BUT_FULL,
        patterns=("nvidia/*/lib/libcufile_rdma.so*",),
        guard=_not_preloaded,
    ),
    Rule(
        id="nvshmem-plugins",
        # Evidence: nothing lists them in DT_NEEDED; they need MPI/PMIx/UCX/libfabric.
        # libnvshmem_host.so.3 stays (libtorch_nvshmem needs it, torch preloads it).
        why="NVSHMEM bootstrap and transport plugins, loaded only by multi-process nvshmem_init",
        keep_in=frozenset({"distributed", "full"}),
        patterns=(
            "nvidia/nvshmem/lib/nvshmem_bootstrap_*.so*",
            "nvidia/nvshmem/lib/nvshmem_transport_*.so*",
        ),
        guard=_not_preloaded,
    ),
    Rule(
        id="cuda-device-bitcode",
        # Evidence: read only by torch/distributed/_symmetric_memory/_nvshmem_triton.py.
        why="LLVM bitcode of NCCL/NVSHMEM device APIs, linked only into Triton kernels",
        keep_in=frozenset({"compile", "distributed", "full"}),
        patterns=("nvidia/*/lib/*.bc",),
        at_install=True,
    ),
    Rule(
        id="cuda-library-headers",
        why="headers of cuDNN, NCCL, NVSHMEM, cuSPARSELt...: only to compile against them",
        keep_in=frozenset({"compile", "full"}),
        patterns=("nvidia/*/include/**",),
        # libtorch_cuda embeds NVRTC sources that #include <cuda_fp16.h>, <cuda_bf16.h>,
        # <cuda_fp8.h>, <cuda_fp4.h>: the CUDA runtime's include dirs (cu13/ in CUDA 13
        # wheels, cuda_runtime/ and cuda_nvrtc/ in CUDA 12 ones) are kept everywhere.
        exclude=(
            "nvidia/cu[0-9]*/include/**",
            "nvidia/cuda_runtime/include/**",
            "nvidia/cuda_nvrtc/include/**",
        ),
        at_install=True,
    ),
    Rule(
        id="triton-test-libraries",
        why="Triton's own test plugins (instrumentation and pass-plugin test libraries)",
        keep_in=_ALL_BUT_FULL,
        patterns=(
            "triton/instrumentation/libGPUInstrumentationTestLib.so",
            "triton/plugins/libTritonPluginsTestLib.so",
        ),
    ),
    Rule(
        id="triton-proton-cupti",
        # Evidence: only triton.knobs.proton / triton/profiler point at these directories.
        why="CUPTI copies used only by Triton's proton profiler, which torch.compile never starts",
        keep_in=_ALL_BUT_FULL,
        patterns=("triton/backends/nvidia/lib/cupti/**", "triton/backends/nvidia/lib/cupti-*/**"),
    ),
    Rule(
        id="triton",
        # Evidence: after `import torch` (2.14.1+cu130) and an op, "triton" is not in
        # sys.modules; torch probes it with a guarded import (torch.utils._triton).
        why="Triton compiles torch.compile kernels; eager, TorchScript and export run without it",
        keep_in=frozenset({"compile", "full"}),
        patterns=("triton/**",),
    ),
    Rule(
        id="package-test-suites",
        why="packages' own tests/ and test/ suites (with test_*.py) that the package never imports",
        keep_in=_ALL_BUT_FULL,
        patterns=("*/**/tests/**", "*/**/test/**"),
        # torch.testing is imported by torch itself; it is not named tests/ but say so.
        exclude=("torch/testing/**",),
        guard=_is_unused_test_suite,
    ),
    # Each stripped copy must map as the original did (``slim.strip``: PT_LOAD checks of
    # ``slim.segments``), else it is refused and listed as reverted. Files rewritten by
    # patchelf/auditwheel (``*.libs/``) are not skipped as a class: measured on numpy
    # 1.24/1.26/2.2/2.4, Pillow 10.1/11.3/12.3, OpenCV 4.8/4.14, scipy 1.17 and
    # torchvision 0.29, every stripped copy that breaks (numpy's and scipy's
    # libscipy_openblas, libgfortran, torchvision's image.so) fails those checks, and every
    # one that passes them imports and runs (tests/unit/slim/test_slim_wheels.py).
    Rule(
        id="strip-symbols",
        why="symbol tables and debug info the loader never reads; kept only if ld.so can map it",
        keep_in=_ALL_BUT_FULL,
        patterns=("**/*.so", "**/*.so.*", "**/bin/*"),
        action="strip",
        guard=_is_strippable_elf,
    ),
)


def rules_fingerprint(profile: str) -> list[tuple[str, str, list[str], list[str]]]:
    """What the rules acting under ``profile`` match and do: part of a layer's cache key,
    so a changed rule rebuilds the layers it shapes."""
    return [(r.id, r.action, sorted(r.patterns), sorted(r.exclude)) for r in rules_for(profile)]


# Slimming steps that are not path rules: the build applies them from what the proof saw.
STEPS: dict[str, str] = {
    "unimported-bytecode": (
        'bytecode = "imported": .pyc of modules the served proof never loaded; they compile'
        " on first import"
    ),
    "unused-distribution": (
        "profile used: a distribution none of whose modules the served proof imported"
    ),
    "unimported-module": (
        "profile used: a module (source and bytecode) the served proof never imported"
    ),
}


def why_of(id: str) -> str:  # noqa: A002 - a rule's or a step's id
    """The one-line why of a rule or a slimming step."""
    return STEPS[id] if id in STEPS else rule_by_id(id).why


def check_profile(profile: str) -> str:
    """Return ``profile`` when known, else raise a one-line ConfigError naming the choices."""
    if profile not in PROFILES:
        valid = ", ".join(PROFILES)
        raise ConfigError(f"unknown slim profile {profile!r}: use one of {valid}")
    return profile


def rule_by_id(id: str) -> Rule:  # noqa: A002 - the public API names it ``id``
    """The rule with this id; KeyError names the known ids."""
    for rule in RULES:
        if rule.id == id:
            return rule
    raise KeyError(f"unknown slim rule {id!r}; known: {', '.join(r.id for r in RULES)}")


def rules_for(profile: str) -> tuple[Rule, ...]:
    """Rules that act under ``profile`` (validated), in matching order."""
    check_profile(profile)
    return tuple(r for r in RULES if r.active_in(profile))
