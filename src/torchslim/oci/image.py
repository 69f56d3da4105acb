"""The Image protocol every source and sink speaks, and the shared base for images.

An image is a config blob plus layers; its manifest ties them together.
Sources are lazy: opening an image reads small JSON, layer bytes move only
when a sink calls :meth:`Image.open_layer`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, BinaryIO, Protocol, runtime_checkable

from torchslim.config import Platform
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.media import OCI_CONFIG, OCI_MANIFEST


def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise IntegrityError(f"{what} is not a JSON object; the image is corrupt")
    return obj


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{what} is not valid JSON ({exc}); the image is corrupt") from exc


@runtime_checkable
class Image(Protocol):
    def config_bytes(self) -> bytes: ...
    def config(self) -> dict[str, Any]: ...
    def layers(self) -> list[Layer]: ...
    def open_layer(self, layer: Layer) -> BinaryIO: ...
    def manifest_bytes(self) -> bytes: ...
    def manifest(self) -> dict[str, Any]: ...
    def digest(self) -> str: ...
    @property
    def platform(self) -> Platform: ...


class BaseImage(ABC):
    """Derives config(), manifest(), digest() and platform from the two raw methods.

    Subclasses give ``config_bytes``, ``layers`` and ``open_layer``; the
    manifest is synthesized canonically (OCI types) unless overridden.
    """

    @abstractmethod
    def config_bytes(self) -> bytes: ...

    @abstractmethod
    def layers(self) -> list[Layer]: ...

    @abstractmethod
    def open_layer(self, layer: Layer) -> BinaryIO: ...

    def config(self) -> dict[str, Any]:
        return parse_json_object(self.config_bytes(), "image config")

    def config_descriptor(self) -> Descriptor:
        data = self.config_bytes()
        return Descriptor(OCI_CONFIG, sha256_bytes(data), len(data))

    def manifest_bytes(self) -> bytes:
        return self._synth_manifest

    def manifest_annotations(self) -> dict[str, str]:
        """The synthesized manifest's ``annotations`` (none unless a mutation set some)."""
        return {}

    @cached_property
    def _synth_manifest(self) -> bytes:
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config_descriptor().to_json(),
            "layers": [layer.descriptor.to_json() for layer in self.layers()],
        }
        annotations = self.manifest_annotations()
        if annotations:
            manifest["annotations"] = dict(annotations)
        return canonical_json(manifest)

    def manifest(self) -> dict[str, Any]:
        return parse_json_object(self.manifest_bytes(), "image manifest")

    def digest(self) -> str:
        return sha256_bytes(self.manifest_bytes())

    @property
    def platform(self) -> Platform:
        return platform_of(self.config())


def platform_of(entry: dict[str, Any]) -> Platform:
    """The platform of an image config, or of an index entry's ``platform`` object."""
    variant = entry.get("variant")
    return Platform(
        str(entry.get("os") or ""),
        str(entry.get("architecture") or ""),
        str(variant) if variant else None,
    )


def manifest_media_type(image: Image) -> str:
    return str(image.manifest().get("mediaType") or OCI_MANIFEST)


def config_media_type(image: Image) -> str:
    cfg = image.manifest().get("config") or {}
    return str(cfg.get("mediaType") or OCI_CONFIG)


def layer_by_diff_id(image: Image, diff_id: str) -> Layer:
    for layer in image.layers():
        if layer.diff_id == diff_id:
            return layer
    raise BuildError(f"image {image.digest()} has no layer with diff id {diff_id}")


def check_layers_match_config(layers: list[Layer], config: dict[str, Any], where: str) -> None:
    """The manifest's layers and the config's rootfs.diff_ids must pair up one to one."""
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers):
        raise IntegrityError(
            f"{where}: manifest lists {len(layers)} layers but the config has "
            f"{len(diff_ids)} diff_ids; the image is corrupt"
        )


class StoredImage(BaseImage):
    """An image whose manifest and config bytes were read from a layout, archive or registry.

    The bytes are kept as served (their digests must not change); a ``None``
    manifest (a legacy ``docker save``) is synthesized. Subclasses give ``open_layer``.
    """

    def __init__(self, manifest: bytes | None, config: bytes, layers: list[Layer]) -> None:
        self._manifest = manifest
        self._config = config
        self._layers = layers

    def config_bytes(self) -> bytes:
        return self._config

    def manifest_bytes(self) -> bytes:
        return self._manifest if self._manifest is not None else super().manifest_bytes()

    def layers(self) -> list[Layer]:
        return list(self._layers)
