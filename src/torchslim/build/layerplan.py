"""Which Python distributions go into which image layer, for CUDA builds.

torch, then the ``nvidia-*`` wheels in a few layers by library group (cuDNN alone is
about 1 GB; cuBLAS another 0.6 GB), then Triton, then everything else. Registries and
runtimes pull layers in parallel, and a torch upgrade that keeps its cuDNN pin reuses
that layer. Names are compared in PEP 503 normal form (``nvidia_cudnn_cu13`` ==
``nvidia-cudnn-cu13``); the CUDA-major suffix (``-cu12``, ``-cu13``) is ignored for
grouping. Output order and the order inside each layer are fixed, so the plan (and the
layer digests) depend only on the set of packages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# (layer name, library names after "nvidia-", without the -cuXX suffix), in layer order.
NVIDIA_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("nvidia-cudnn", ("cudnn",)),
    ("nvidia-blas", ("cublas", "cublaslt")),
    (
        "nvidia-math",
        ("cufft", "curand", "cusolver", "cusparse", "cusparselt", "nvjitlink", "npp", "nvjpeg"),
    ),
    (
        "nvidia-runtime",
        (
            "cuda-runtime",
            "cuda-nvrtc",
            "cuda-cupti",
            "nvtx",
            "cufile",
            "cuda-nvcc",
            "cuda-crt",
            "cuda-cccl",
            "nvvm",
            "cuda-bindings",
            "cuda-pathfinder",
        ),
    ),
    ("nvidia-comm", ("nccl", "nvshmem")),
)
# Packages that are not named nvidia-* but belong to a CUDA layer.
_EXTRA = {
    "cuda-toolkit": "nvidia-runtime",
    "cuda-bindings": "nvidia-runtime",
    "cuda-pathfinder": "nvidia-runtime",
    "cuda-python": "nvidia-runtime",
}
_CU_SUFFIX = re.compile(r"-cu\d+$")


def normalize(name: str) -> str:
    """PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _group_of(name: str) -> str:
    if name == "torch":
        return "torch"
    if name == "triton" or name.startswith("triton-"):  # pytorch-triton on the torch index
        return "triton"
    if name == "pytorch-triton":
        return "triton"
    if name in _EXTRA:
        return _EXTRA[name]
    if name.startswith("nvidia-"):
        lib = _CU_SUFFIX.sub("", name.removeprefix("nvidia-"))
        for layer, libs in NVIDIA_GROUPS:
            if lib in libs:
                return layer
        return "nvidia-runtime"  # an nvidia-* wheel we do not know yet: with the runtime
    return "deps"


LAYER_ORDER: tuple[str, ...] = (
    "torch",
    *(layer for layer, _ in NVIDIA_GROUPS),
    "triton",
    "deps",
)


def plan_python_layers(packages: Sequence[str]) -> list[tuple[str, list[str]]]:
    """[(layer name, [normalized package names])] in ``LAYER_ORDER``; empty layers dropped."""
    groups: dict[str, set[str]] = {layer: set() for layer in LAYER_ORDER}
    for raw in packages:
        name = normalize(raw)
        groups[_group_of(name)].add(name)
    return [(layer, sorted(groups[layer])) for layer in LAYER_ORDER if groups[layer]]
