"""The Image protocol every source and sink speaks, and the shared base for images.

An image is a config blob plus layers; its manifest ties them together.
Sources are lazy: opening an image reads small JSON, layer bytes move only
when a sink calls :meth:`Image.open_layer`.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, BinaryIO, Protocol, runtime_checkable

from torchslim.config import Platform
from torchslim.digests import is_digest, sha256_bytes
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.limits import JSON_DEPTH_MAX
from torchslim.oci.media import OCI_CONFIG, OCI_MANIFEST


def canonical_json(obj: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise IntegrityError(f"{what} is not a JSON object; the image is corrupt")
    return obj


# A JSON string (escapes skipped whole), a bracket, or a quote that opens no string.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]|"', re.DOTALL)


def json_depth(data: bytes, limit: int = JSON_DEPTH_MAX) -> int:
    """How deep arrays and objects nest in ``data``, counted without recursion (stops past
    ``limit``); -1 when a string never ends (the JSON is invalid)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return 0  # cannot nest deeper than it has brackets
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(data):
        token = m.group()
        if len(token) > 1:
            continue  # a whole string
        if token == b'"':
            return -1
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def parse_json(data: bytes, what: str) -> Any:
    """JSON of an image; nesting beyond JSON_DEPTH_MAX is refused before it is parsed
    (the parser, and everything that walks its result, recurses)."""
    depth = json_depth(data)
    if depth > JSON_DEPTH_MAX:
        raise IntegrityError(
            f"{what} nests deeper than {JSON_DEPTH_MAX} levels; the image is corrupt or hostile"
        )
    if depth < 0:
        raise IntegrityError(
            f"{what} is not valid JSON (a string never ends); the image is corrupt"
        )
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        detail = str(exc)[:120]
        raise IntegrityError(f"{what} is not valid JSON ({detail}); the image is corrupt") from None


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


# Fields of an image config torchslim reads → (what they must be, check); absent or null is ok.
_INNER_FIELDS: dict[str, tuple[str, Any]] = {
    "User": ("a string", lambda v: isinstance(v, str)),
    "WorkingDir": ("a string", lambda v: isinstance(v, str)),
    "StopSignal": ("a string", lambda v: isinstance(v, str)),
    "Env": ("a list of strings", _is_str_list),
    "Cmd": ("a list of strings", _is_str_list),
    "Entrypoint": ("a list of strings", _is_str_list),
    "Shell": ("a list of strings", _is_str_list),
    "Labels": ("an object of strings", _is_str_map),
    "ExposedPorts": ("an object", lambda v: isinstance(v, dict)),
    "Volumes": ("an object", lambda v: isinstance(v, dict)),
    "Healthcheck": (
        "an object whose Test is a list of strings",
        lambda v: isinstance(v, dict) and (v.get("Test") is None or _is_str_list(v["Test"])),
    ),
}


def check_config(config: dict[str, Any], where: str) -> None:
    """The fields of an image config that torchslim reads have the spec's types.

    A config with ``"User": []`` or ``"rootfs": "x"`` is a one-line IntegrityError here,
    not a crash wherever the field is read later.
    """

    def bad(field: str, want: str) -> IntegrityError:
        return IntegrityError(
            f"{where}: config field `{field}` must be {want}; the image is corrupt"
        )

    for key in ("architecture", "os", "variant", "created", "author"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise bad(key, "a string")
    rootfs = config.get("rootfs", {"diff_ids": []})
    if not isinstance(rootfs, dict):
        raise bad("rootfs", "an object")
    ids = rootfs.get("diff_ids") or []
    if not isinstance(ids, list) or not all(is_digest(d) for d in ids):
        raise bad("rootfs.diff_ids", "a list of sha256:<hex> digests")
    inner = config.get("config")
    if inner is not None and not isinstance(inner, dict):
        raise bad("config", "an object")
    for name, (want, ok) in _INNER_FIELDS.items():
        value = (inner or {}).get(name)
        if value is not None and not ok(value):
            raise bad(f"config.{name}", want)
    history = config.get("history")
    if history is not None and not (
        isinstance(history, list) and all(isinstance(h, dict) for h in history)
    ):
        raise bad("history", "a list of objects")


def manifest_parts(manifest: dict[str, Any], where: str) -> tuple[Descriptor, list[Descriptor]]:
    """The config descriptor and the layer descriptors of an image manifest, checked."""
    layers = manifest.get("layers") or []
    if not isinstance(layers, list):
        raise IntegrityError(f"{where}: manifest `layers` is not a list; the image is corrupt")
    config = Descriptor.from_json(manifest.get("config") or {}, f"{where}: manifest config")
    return config, [Descriptor.from_json(d, f"{where}: manifest layer") for d in layers]


def index_entries(index: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The ``manifests`` of an image index (or a layout's index.json), each an object."""
    entries = index.get("manifests") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise IntegrityError(f"{where}: `manifests` is not a list of objects; the index is corrupt")
    return entries


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
    """The platform of an image config, or of an index entry's ``platform`` object
    (anything else, as a hostile index may give, is no platform)."""
    if not isinstance(entry, dict):
        return Platform("", "", None)
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


def diff_ids_of(config: dict[str, Any]) -> list[str]:
    """``rootfs.diff_ids`` of a config ``check_config`` accepted."""
    return [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]


def check_layers_match_config(layers: list[Layer], config: dict[str, Any], where: str) -> None:
    """The config is well formed and the manifest's layers and its rootfs.diff_ids pair up
    one to one."""
    check_config(config, where)
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
