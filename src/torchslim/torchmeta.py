"""What torch ships: variants, wheel indexes, CUDA versions, driver floors, tag names.

One table per fact, each with its source:

* ``_RELEASES``: the variants on ``download.pytorch.org/whl/<variant>`` per torch minor
  release, and which variant the plain PyPI wheel (no local version tag) is built for.
* ``CUDA_DRIVERS``: the minimum Linux x86_64 driver per CUDA version, from NVIDIA's CUDA
  Toolkit release notes: "CUDA Toolkit and Corresponding Driver Versions" (the GA
  release's toolkit driver) and "CUDA Toolkit and Minimum Required Driver Version for
  CUDA Minor Version Compatibility" (11.x >= 450.80.02, 12.x >= 525.60.13, 13.x >= 580;
  the compatibility guide's driver-range table agrees: 13.x >= 580, 12.x >= 525,
  11.x >= 450). A torch wheel brings its own CUDA runtime, so a host needs only a driver:
  at or above ``toolkit`` everything works; at or above ``minor_compat`` it runs with
  minor-version compatibility (no JIT of PTX newer than the driver); below, not at all.

``tests/unit/core/test_torchmeta.py`` checks the tables against the wheels' own metadata
(torch's ``Requires-Dist`` pins of ``cuda-toolkit`` / ``nvidia-cuda-runtime``) where the
wheels are at hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from torchslim.errors import ConfigError

PYTORCH_INDEX = "https://download.pytorch.org/whl"
PYPI_INDEX = "https://pypi.org/simple"

# Variants each torch release ships (from the PyTorch index), and which one the
# plain PyPI wheel is for Linux x86_64 (that one carries no local version tag).
_RELEASES: dict[str, tuple[tuple[str, ...], str]] = {
    "2.5": (("cpu", "cu118", "cu121", "cu124"), "cu124"),
    "2.6": (("cpu", "cu118", "cu124", "cu126"), "cu124"),
    "2.7": (("cpu", "cu118", "cu126", "cu128"), "cu126"),
    "2.8": (("cpu", "cu126", "cu128", "cu129"), "cu128"),
    "2.9": (("cpu", "cu126", "cu128", "cu130"), "cu128"),
    "2.10": (("cpu", "cu126", "cu128", "cu130"), "cu128"),
    "2.11": (("cpu", "cu126", "cu128", "cu130"), "cu130"),
    "2.12": (("cpu", "cu126", "cu128", "cu130"), "cu130"),
    "2.13": (("cpu", "cu126", "cu128", "cu130"), "cu130"),
    "2.14": (("cpu", "cu128", "cu130"), "cu130"),
}


@dataclass(frozen=True)
class CudaDriver:
    """Linux x86_64 driver floors for one CUDA major.minor."""

    cuda: str  # "12.8"
    toolkit: str  # driver of the toolkit's GA release (full feature set)
    minor_compat: str  # lowest driver that runs it through minor-version compatibility


# Minor-version-compatibility floor per CUDA major (release notes, Table 2). CUDA 13.0's
# notes give ">= 580"; its first Linux driver is 580.65.06, so that is the usable floor.
_MINOR_COMPAT = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}

# CUDA version -> toolkit driver of its GA release (release notes, Table 3).
_TOOLKIT_DRIVER = {
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

CUDA_DRIVERS: dict[str, CudaDriver] = {
    cuda: CudaDriver(cuda, toolkit, _MINOR_COMPAT[cuda.split(".")[0]])
    for cuda, toolkit in _TOOLKIT_DRIVER.items()
}

_VARIANT = re.compile(r"cu(\d{2,3})")
_DRIVER = re.compile(r"\d+(\.\d+){0,2}")


def minor(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2])


def cuda_version(variant: str) -> str | None:
    """``"cu130"`` -> ``"13.0"``, ``"cu118"`` -> ``"11.8"``; ``"cpu"`` -> None."""
    if variant == "cpu":
        return None
    m = _VARIANT.fullmatch(variant)
    if m is None:
        raise ConfigError(
            f"variant {variant!r} is neither `cpu` nor `cuXYZ` (e.g. cu128): fix `variant`"
        )
    digits = m.group(1)
    return f"{digits[:-1]}.{digits[-1]}"


def variant_label(variant: str) -> str:
    """``cpu`` or ``cudaX.Y``: the tag and label spelling of a variant."""
    cuda = cuda_version(variant)
    return "cpu" if cuda is None else f"cuda{cuda}"


def shipped_variants(version: str) -> tuple[str, ...]:
    """Variants torch ``version`` ships; empty for a release this table does not know."""
    return _RELEASES.get(minor(version), ((), ""))[0]


def pypi_default_variant(version: str) -> str | None:
    """The variant PyPI's plain Linux x86_64 wheel of ``version`` is built for."""
    shipped = _RELEASES.get(minor(version))
    return shipped[1] if shipped else None


def wheel_index(version: str, variant: str) -> str:
    """The index holding ``torch==version`` for ``variant``.

    PyTorch's per-variant index carries every variant (its nvidia-* dependencies too);
    PyPI carries only the default one, under the plain version.
    """
    return f"{PYTORCH_INDEX}/{variant}"


def minor_compat_floor(cuda: str) -> str | None:
    """The minor-version-compatibility driver floor of ``cuda``'s major, if known."""
    return _MINOR_COMPAT.get(cuda.split(".")[0])


def parse_driver(version: str) -> tuple[int, ...]:
    """``"535.104.05"`` -> ``(535, 104, 5)``; comparable as tuples."""
    v = version.strip()
    if not _DRIVER.fullmatch(v):
        raise ValueError(f"not an NVIDIA driver version: {version!r}")
    return tuple(int(p) for p in v.split("."))


def min_driver(variant: str, compat: bool = True) -> str | None:
    """Lowest Linux driver that runs ``variant``; None for ``cpu``.

    ``compat=True`` gives the minor-version-compatibility floor (what the CUDA runtime
    accepts); ``compat=False`` the toolkit's own GA driver (no compatibility limits).
    A CUDA minor this table lacks gets its major's compatibility floor for both.
    """
    cuda = cuda_version(variant)
    if cuda is None:
        return None
    row = CUDA_DRIVERS.get(cuda)
    if row is not None:
        return row.minor_compat if compat else row.toolkit
    floor = _MINOR_COMPAT.get(cuda.split(".")[0])
    if floor is None:
        raise ConfigError(f"variant {variant!r}: CUDA {cuda} is not in torchslim's driver table")
    return floor


def check_driver(driver: str, variant: str, *, compat: bool = True, source: str = "host") -> None:
    """Raise ConfigError when ``driver`` (e.g. from nvidia-smi) is too old for ``variant``."""
    need = min_driver(variant, compat)
    if need is None:
        return
    if parse_driver(driver) < parse_driver(need):
        kind = "minor-version-compatibility minimum" if compat else "toolkit driver"
        raise ConfigError(
            f"{source}: NVIDIA driver {driver} is older than {need}, the {kind} for "
            f"{variant} (CUDA {cuda_version(variant)}): upgrade the driver or pick an older "
            "`variant`"
        )


# Requires-Dist lines that pin the CUDA runtime: torch <= 2.10-era wheels name
# ``nvidia-cuda-runtime-cu12==12.8.90``; CUDA 13 wheels ``nvidia-cuda-runtime==13.0.96``
# or the ``cuda-toolkit[cudart,...]==13.0.3`` meta package.
_CUDA_PIN = re.compile(
    r"^\s*(?:nvidia-cuda-runtime(?:-cu\d+)?|cuda-toolkit)\s*(?:\[[^\]]*\])?\s*"
    r"(?:==|~=|>=)\s*(\d+)\.(\d+)",
    re.IGNORECASE,
)


def cuda_of_requirements(requires: Iterable[str]) -> str | None:
    """CUDA major.minor a wheel was built for, from its METADATA ``Requires-Dist`` values.

    None when nothing pins the CUDA runtime (CPU wheels, or wheels bundling the libs).
    """
    for req in requires:
        m = _CUDA_PIN.match(req.replace("_", "-"))
        if m is not None:
            return f"{m.group(1)}.{m.group(2)}"
    return None


@dataclass(frozen=True)
class TorchBuild:
    version: str
    variant: str

    @property
    def requirement(self) -> str:
        """The pin that selects this build: PyPI's default build has no local tag."""
        if self.variant == pypi_default_variant(self.version):
            return f"torch=={self.version}"
        return f"torch=={self.version}+{self.variant}"

    @property
    def index_url(self) -> str:
        return wheel_index(self.version, self.variant)

    @property
    def cuda(self) -> str | None:
        """``"13.0"`` for cu130, None for cpu."""
        return cuda_version(self.variant)

    def min_driver(self, compat: bool = True) -> str | None:
        return min_driver(self.variant, compat)

    @property
    def tag_suffix(self) -> str:
        """``pytorch2.13-cpu`` or ``pytorch2.14-cuda13.0``."""
        return f"pytorch{minor(self.version)}-{variant_label(self.variant)}"


def torch_build(version: str, variant: str, *, file: str = "torchslim.toml") -> TorchBuild:
    """Validate ``variant`` against what torch ``version`` ships (unknown releases pass)."""
    try:
        cuda_version(variant)
    except ConfigError:
        raise ConfigError(
            f"{file}: key `variant`: {variant!r} is neither `cpu` nor `cuXYZ` (e.g. cu128)"
        ) from None
    shipped = _RELEASES.get(minor(version))
    if shipped is not None and variant not in shipped[0]:
        raise ConfigError(
            f"{file}: key `variant`: torch {version} does not ship {variant!r}; "
            f"choose one of {', '.join(shipped[0])}"
        )
    return TorchBuild(version, variant)


def image_tag(version: str, build: TorchBuild) -> str:
    return f"v{version}-{build.tag_suffix}"


# ---- the one label vocabulary: what build and generate write is what runtime reads -------

LABEL_TORCH = "dev.torchslim.torch"  # "2.14.1+cu130": version and variant
LABEL_PROFILE = "dev.torchslim.profile"  # slimming profile, "none" for --no-slim
LABEL_CUDA = "dev.torchslim.cuda"  # "13.0" (CUDA variants only)
LABEL_MIN_DRIVER = "dev.torchslim.min-driver"  # "580.65.06" (CUDA variants only)
LABEL_PROOF = "dev.torchslim.proof"  # what the build's proof run showed (runtime.proof)


def torch_labels(build: TorchBuild, profile: str | None = None) -> dict[str, str]:
    """The image labels that say which torch build an image carries (and how it was slimmed)."""
    labels = {LABEL_TORCH: f"{build.version}+{build.variant}"}
    if profile is not None:
        labels[LABEL_PROFILE] = profile
    if build.cuda:
        labels[LABEL_CUDA] = build.cuda
        labels[LABEL_MIN_DRIVER] = build.min_driver() or ""
    return labels


# ---- the torch family: torchvision and torchaudio are built per torch release and variant --

FAMILY = ("torchvision", "torchaudio")


def paired_torch(package: str, version: str) -> str | None:
    """The torch ``X.Y`` a torchvision/torchaudio release is built against.

    torchvision 0.N pairs with torch 2.(N-15) (0.28 ↔ 2.13); torchaudio 2.Y with torch 2.Y.
    """
    parts = version.split("+", 1)[0].split(".")
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    if package == "torchvision" and parts[0] == "0" and int(parts[1]) >= 15:
        return f"2.{int(parts[1]) - 15}"
    if package == "torchaudio" and parts[0] == "2":
        return f"2.{parts[1]}"
    return None


def family_series(package: str, torch: str) -> str | None:
    """The ``X.Y`` of the torchvision/torchaudio releases built for torch ``torch``
    (``torchvision``, ``2.13.0`` → ``0.28``); None for another package."""
    m = int(minor(torch).split(".")[1])
    if package == "torchvision":
        return f"0.{m + 15}"
    return f"2.{m}" if package == "torchaudio" else None


def family_release(package: str, torch: str) -> str | None:
    """The torchvision/torchaudio release that pairs with torch ``torch`` (``2.13.0`` →
    torchvision ``0.28.0``: each release of the family ships with torch's patch number),
    for the torch releases ``_RELEASES`` knows; None otherwise."""
    series = family_series(package, torch)
    if series is None or minor(torch) not in _RELEASES:
        return None
    parts = torch.split("+")[0].split(".")
    return f"{series}.{parts[2] if len(parts) > 2 else 0}"


def wheel_variant(package: str, version: str) -> str | None:
    """The variant a torch-family wheel is built for: its local tag (``+cu130``), or for
    PyPI's plain wheel the default variant of the torch release it pairs with."""
    _, plus, local = version.partition("+")
    if plus:
        return local
    torch = paired_torch(package, version)
    return pypi_default_variant(torch) if torch else None
