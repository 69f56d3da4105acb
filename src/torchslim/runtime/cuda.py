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
from dataclasses import dataclass

from torchslim.errors import ConfigError
from torchslim.torchmeta import variant_label


@dataclass(frozen=True)
class DriverNeed:
    cuda: str
    toolkit: str  # driver shipped with / required by the toolkit's GA release
    minor_compat: str  # lowest driver that runs it via minor-version compatibility


_MINOR_COMPAT = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}

# CUDA version -> Linux x86_64 minimum driver of that toolkit's GA release.
_TOOLKIT = {
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

MIN_DRIVER: dict[str, DriverNeed] = {
    cuda: DriverNeed(cuda, toolkit, _MINOR_COMPAT[cuda.split(".")[0]])
    for cuda, toolkit in _TOOLKIT.items()
}

_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")


def parse_driver(version: str) -> tuple[int, ...]:
    """``"535.104.05"`` -> ``(535, 104, 5)``; comparable as tuples."""
    v = version.strip()
    if not _VERSION.match(v):
        raise ValueError(f"not a driver version: {version!r}")
    return tuple(int(p) for p in v.split("."))


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
    torch_label = labels.get("dev.torchslim.torch", "")
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
    major = cuda.split(".")[0]
    if major in _MINOR_COMPAT:
        return DriverNeed(cuda, _MINOR_COMPAT[major], _MINOR_COMPAT[major])
    return None
