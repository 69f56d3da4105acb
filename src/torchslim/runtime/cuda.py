"""Which NVIDIA driver a CUDA version needs on Linux x86_64.

From NVIDIA's CUDA Toolkit release notes ("CUDA Toolkit and Corresponding
Driver Versions", and "Minimum Required Driver Version for CUDA Minor
Version Compatibility"). torch wheels bundle their own CUDA runtime, so the
host only needs a driver; below ``toolkit`` but at or above ``minor_compat``
they run through minor-version compatibility (no PTX JIT of newer PTX), below
``minor_compat`` they do not run at all.
"""

from __future__ import annotations

import re

from torchslim.errors import ConfigError
from torchslim.torchmeta import (
    CUDA_DRIVERS,
    LABEL_TORCH,
    CudaDriver,
    minor_compat_floor,
    parse_driver,
    variant_label,
)

__all__ = [
    "MIN_DRIVER",
    "DriverNeed",
    "cuda_of_image",
    "cuda_of_variant",
    "driver_at_least",
    "need_for",
    "parse_driver",
]

# The table lives in torchmeta (torch <-> CUDA <-> driver); doctor and verify read it here.
DriverNeed = CudaDriver
MIN_DRIVER: dict[str, CudaDriver] = CUDA_DRIVERS


def driver_at_least(found: str, needed: str) -> bool:
    return parse_driver(found) >= parse_driver(needed)


def cuda_of_variant(variant: str) -> str | None:
    """``"cu130"`` -> ``"13.0"``; ``"cpu"`` -> None."""
    if variant == "cpu":
        return None
    if not re.fullmatch(r"cu\d{3}", variant):
        raise ConfigError(
            f"variant {variant!r} is not `cpu` or `cuXYZ` (e.g. cu128); fix --variant"
        )
    return variant_label(variant).removeprefix("cuda")


_LABEL_CU = re.compile(r"\+cu(\d{3})\b")
_ENV_CUDA = re.compile(r"^CUDA_VERSION=(\d+)\.(\d+)")


def cuda_of_image(labels: dict[str, str], env: list[str]) -> str | None:
    """The CUDA version an image was built for: torchslim's label, else a CUDA base's env."""
    torch_label = labels.get(LABEL_TORCH, "")
    m = _LABEL_CU.search(torch_label)
    if m:
        return variant_label(f"cu{m.group(1)}").removeprefix("cuda")
    for item in env:
        e = _ENV_CUDA.match(item)
        if e:
            return f"{e.group(1)}.{e.group(2)}"
    return None


def need_for(cuda: str) -> DriverNeed | None:
    """The table row; an unlisted minor of a known major gets the major's compat floor."""
    if cuda in MIN_DRIVER:
        return MIN_DRIVER[cuda]
    floor = minor_compat_floor(cuda)
    return DriverNeed(cuda, floor, floor) if floor else None
