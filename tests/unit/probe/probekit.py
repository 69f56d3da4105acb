"""Fixtures: base images built here from real trees with torchslim.oci (no registry)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from torchslim.cache import BlobStore
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import Compression, write_layer_from_dir
from torchslim.oci.mutate import append_layers, with_config

LayerSpec = Path | tuple[Path, Compression]
ImageMaker = Callable[..., Image]


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


@pytest.fixture
def make_image(store: BlobStore) -> ImageMaker:
    """Layers (directories, bottom first) over the empty image, with an optional PATH."""

    def build(
        layers: Sequence[LayerSpec], env: Mapping[str, str] | None = None, arch: str = "amd64"
    ) -> Image:
        written = []
        for spec in layers:
            root, comp = spec if isinstance(spec, tuple) else (spec, "gzip")
            layer = write_layer_from_dir(root, store, compression=comp)
            written.append((layer, store, f"probe test layer {root.name}"))
        img = append_layers(empty_image(arch), written)
        return with_config(img, env=env) if env else img

    return build
