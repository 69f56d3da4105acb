"""What torch ships: variants, wheel indexes, tag names."""

from __future__ import annotations

from dataclasses import dataclass

from torchslim.errors import ConfigError

PYTORCH_INDEX = "https://download.pytorch.org/whl"

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


def minor(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2])


@dataclass(frozen=True)
class TorchBuild:
    version: str
    variant: str

    @property
    def requirement(self) -> str:
        """The pin that selects this build: PyPI's default build has no local tag."""
        _, pypi_default = _RELEASES.get(minor(self.version), ((), ""))
        if self.variant == pypi_default:
            return f"torch=={self.version}"
        return f"torch=={self.version}+{self.variant}"

    @property
    def index_url(self) -> str:
        return f"{PYTORCH_INDEX}/{self.variant}"

    @property
    def tag_suffix(self) -> str:
        """``pytorch2.13-cpu`` or ``pytorch2.14-cuda13.0``."""
        return f"pytorch{minor(self.version)}-{variant_label(self.variant)}"


def variant_label(variant: str) -> str:
    if variant == "cpu":
        return "cpu"
    digits = variant.removeprefix("cu")
    return f"cuda{digits[:-1]}.{digits[-1]}"


def torch_build(version: str, variant: str, *, file: str = "torchslim.toml") -> TorchBuild:
    shipped = _RELEASES.get(minor(version))
    if shipped is not None and variant not in shipped[0]:
        raise ConfigError(
            f"{file}: key `variant`: torch {version} does not ship {variant!r}; "
            f"choose one of {', '.join(shipped[0])}"
        )
    return TorchBuild(version, variant)


def image_tag(version: str, build: TorchBuild) -> str:
    return f"v{version}-{build.tag_suffix}"
