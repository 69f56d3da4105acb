"""Layer planning for CUDA builds: groups, order, normalization, determinism."""

from __future__ import annotations

import random

from torchslim.build.layerplan import LAYER_ORDER, plan_python_layers

# The distributions `pip install torch==2.14.1` brings on Linux (CUDA 13 stack).
TORCH_2_14_STACK = [
    "torch",
    "triton",
    "cuda-toolkit",
    "cuda-bindings",
    "cuda-pathfinder",
    "nvidia-cublas",
    "nvidia-cuda-cupti",
    "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime",
    "nvidia-cudnn-cu13",
    "nvidia-cufft",
    "nvidia-cufile",
    "nvidia-curand",
    "nvidia-cusolver",
    "nvidia-cusparse",
    "nvidia-cusparselt-cu13",
    "nvidia-nccl-cu13",
    "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13",
    "nvidia-nvtx",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "MarkupSafe",
    "filelock",
    "fsspec",
    "typing_extensions",
    "setuptools",
]


def test_cuda13_stack() -> None:
    plan = dict(plan_python_layers(TORCH_2_14_STACK))
    assert list(plan) == [
        "torch",
        "nvidia-cudnn",
        "nvidia-blas",
        "nvidia-math",
        "nvidia-runtime",
        "nvidia-comm",
        "triton",
        "deps",
    ]
    assert plan["torch"] == ["torch"]
    assert plan["nvidia-cudnn"] == ["nvidia-cudnn-cu13"]
    assert plan["nvidia-blas"] == ["nvidia-cublas"]
    assert plan["nvidia-math"] == [
        "nvidia-cufft",
        "nvidia-curand",
        "nvidia-cusolver",
        "nvidia-cusparse",
        "nvidia-cusparselt-cu13",
        "nvidia-nvjitlink",
    ]
    assert plan["nvidia-comm"] == ["nvidia-nccl-cu13", "nvidia-nvshmem-cu13"]
    assert "nvidia-cuda-runtime" in plan["nvidia-runtime"]
    assert "cuda-toolkit" in plan["nvidia-runtime"]
    assert plan["triton"] == ["triton"]
    assert "markupsafe" in plan["deps"] and "typing-extensions" in plan["deps"]
    # every package lands in exactly one layer
    assert sum(len(v) for v in plan.values()) == len(TORCH_2_14_STACK)


def test_cuda12_names_and_spelling_variants() -> None:
    plan = dict(
        plan_python_layers(
            ["nvidia_cudnn_cu12", "nvidia-cublas-cu12", "NVIDIA.NCCL.CU12", "pytorch-triton"]
        )
    )
    assert plan == {
        "nvidia-cudnn": ["nvidia-cudnn-cu12"],
        "nvidia-blas": ["nvidia-cublas-cu12"],
        "nvidia-comm": ["nvidia-nccl-cu12"],
        "triton": ["pytorch-triton"],
    }


def test_cpu_build_drops_empty_groups() -> None:
    assert plan_python_layers(["torch", "numpy", "Pillow"]) == [
        ("torch", ["torch"]),
        ("deps", ["numpy", "pillow"]),
    ]
    assert plan_python_layers([]) == []


def test_unknown_nvidia_wheel_goes_with_the_runtime() -> None:
    assert plan_python_layers(["nvidia-nvfatbin"]) == [("nvidia-runtime", ["nvidia-nvfatbin"])]


def test_deterministic_whatever_the_input_order() -> None:
    expected = plan_python_layers(TORCH_2_14_STACK)
    shuffled = list(TORCH_2_14_STACK)
    random.Random(7).shuffle(shuffled)
    assert plan_python_layers(shuffled) == expected
    assert [layer for layer, _ in expected] == [x for x in LAYER_ORDER if x in dict(expected)]
