"""An image with no layers: the base for images built FROM scratch."""

from __future__ import annotations

from typing import BinaryIO

from torchslim.errors import BuildError
from torchslim.oci.image import BaseImage, Image, canonical_json
from torchslim.oci.layer import Layer


class _EmptyImage(BaseImage):
    def __init__(self, arch: str, os: str, variant: str | None) -> None:
        cfg: dict[str, object] = {
            "architecture": arch,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        if variant:
            cfg["variant"] = variant
        self._config = canonical_json(cfg)

    def config_bytes(self) -> bytes:
        return self._config

    def layers(self) -> list[Layer]:
        return []

    def open_layer(self, layer: Layer) -> BinaryIO:
        raise BuildError(f"the empty image has no layer {layer.digest}")


def empty_image(arch: str = "amd64", os: str = "linux", variant: str | None = None) -> Image:
    """A layerless image for ``os/arch[/variant]`` with a minimal canonical config."""
    return _EmptyImage(arch, os, variant)
