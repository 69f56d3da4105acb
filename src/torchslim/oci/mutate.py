"""Derive new images from old ones: append layers, edit config. Base layer bytes are never touched.

Every mutation re-serializes the config canonically, so the same base and
the same edits always give the same config digest and manifest digest.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.blobio import verified
from torchslim.oci.image import BaseImage, Image, canonical_json
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.media import oci_layer_type

LayerSource = BlobStore | Path | Callable[[], BinaryIO]
EPOCH_CREATED = "1970-01-01T00:00:00Z"
_NS = 1_000_000_000


def rfc3339(epoch: int) -> str:
    """``SOURCE_DATE_EPOCH`` seconds as the UTC timestamp OCI configs use."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Healthcheck:
    """Docker's HEALTHCHECK; ``test`` is exec form (``["CMD", ...]``) or ``["NONE"]``."""

    test: tuple[str, ...]
    interval_s: float = 30.0
    timeout_s: float = 30.0
    start_period_s: float = 0.0
    retries: int = 3

    def to_config(self) -> dict[str, Any]:
        if not self.test or self.test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise BuildError(
                f"healthcheck test {list(self.test)!r} must start with CMD, CMD-SHELL or NONE"
            )
        return {
            "Test": list(self.test),
            "Interval": round(self.interval_s * _NS),
            "Timeout": round(self.timeout_s * _NS),
            "StartPeriod": round(self.start_period_s * _NS),
            "Retries": self.retries,
        }


def _opener(layer: Layer, source: LayerSource) -> Callable[[], BinaryIO]:
    what = f"layer {layer.digest}"
    if isinstance(source, BlobStore):
        store = source

        def open_store() -> BinaryIO:
            if not store.has(layer.digest):
                raise IntegrityError(
                    f"{what} is not in the blob store {store.root}; "
                    "clear the layer cache and rebuild"
                )
            return store.open(layer.digest)

        return open_store
    if isinstance(source, Path):
        path = source

        def open_path() -> BinaryIO:
            if not path.is_file():
                raise IntegrityError(f"{what}: blob file {path} is missing; rebuild the layer")
            return path.open("rb")

        return open_path
    return source


class _Mutated(BaseImage):
    def __init__(
        self,
        base: Image,
        config: dict[str, Any],
        layers: list[Layer],
        added: Mapping[str, Callable[[], BinaryIO]],
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self._base = base
        self._config = canonical_json(config)
        self._layers = layers
        self._added = dict(added)
        self._annotations = dict(annotations or {})

    def config_bytes(self) -> bytes:
        return self._config

    def manifest_annotations(self) -> dict[str, str]:
        return dict(self._annotations)

    def layers(self) -> list[Layer]:
        return list(self._layers)

    def open_layer(self, layer: Layer) -> BinaryIO:
        d = layer.descriptor
        opener = self._added.get(d.digest)
        if opener is not None:
            return verified(opener(), d.digest, d.size, f"layer {d.digest}")
        for base_layer in self._base.layers():
            if base_layer.digest == d.digest:
                return self._base.open_layer(base_layer)
        raise BuildError(f"layer {d.digest} is not part of this image")


def _base_parts(
    base: Image,
) -> tuple[dict[str, Any], list[Layer], dict[str, Callable[[], BinaryIO]]]:
    """A mutable copy of the base config, its layers under OCI types, and inherited openers."""
    config = copy.deepcopy(base.config())
    layers = [
        Layer(
            Descriptor(
                oci_layer_type(lay.descriptor.media_type),
                lay.descriptor.digest,
                lay.descriptor.size,
                lay.descriptor.annotations,
            ),
            lay.diff_id,
            lay.uncompressed_size,
        )
        for lay in base.layers()
    ]
    added = dict(base._added) if isinstance(base, _Mutated) else {}
    return config, layers, added


def _annotations(base: Image) -> dict[str, str]:
    """Manifest annotations set by earlier mutations; a source image's own are not inherited
    (they describe that image: its base, its title), as a Dockerfile's FROM does not."""
    return base.manifest_annotations() if isinstance(base, _Mutated) else {}


def _unwrap(base: Image) -> Image:
    """Chains of mutations keep a pointer to the original source, not to each step."""
    return base._base if isinstance(base, _Mutated) else base


def append_layers(
    base: Image,
    layers: Sequence[tuple[Layer, LayerSource, str]],
    *,
    created: str | None = None,
) -> Image:
    """``base`` plus ``layers`` on top; each gets a history entry ``created_by`` its comment.

    ``created`` stamps the new history entries; default: the base config's
    ``created`` (or the epoch), so no wall-clock time leaks in.
    """
    config, out_layers, added = _base_parts(base)
    stamp = created or str(config.get("created") or EPOCH_CREATED)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("type", "layers")
    diff_ids = rootfs.setdefault("diff_ids", [])
    history = config.setdefault("history", [])
    for layer, source, comment in layers:
        out_layers.append(layer)
        diff_ids.append(layer.diff_id)
        history.append({"created": stamp, "created_by": comment})
        added[layer.digest] = _opener(layer, source)
    return _Mutated(_unwrap(base), config, out_layers, added, _annotations(base))


def _merge_env(old: Sequence[str], new: Mapping[str, str] | Sequence[str]) -> list[str]:
    pairs = new.items() if isinstance(new, Mapping) else (e.partition("=")[::2] for e in new)
    merged: dict[str, str] = {}
    for entry in old:
        k, _, v = entry.partition("=")
        merged[k] = v
    for k, v in pairs:
        merged[k] = v
    return [f"{k}={v}" for k, v in merged.items()]


def _port(p: str | int) -> str:
    s = str(p)
    return s if "/" in s else f"{s}/tcp"


def with_config(
    base: Image,
    *,
    user: str | int | None = None,
    env: Mapping[str, str] | Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    working_dir: str | None = None,
    exposed_ports: Sequence[str | int] | None = None,
    healthcheck: Healthcheck | Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    created: str | None = None,
    author: str | None = None,
    stop_signal: str | None = None,
    volumes: Sequence[str] | None = None,
) -> Image:
    """``base`` with its runtime config edited; ``None`` leaves a field as it is.

    The health check goes to ``config.Healthcheck`` (Docker) and
    ``container_config.Healthcheck`` (what podman 4 reads).

    ``env``, ``labels`` and ``exposed_ports`` merge into the base's values.
    As in a Dockerfile, setting ``entrypoint`` without ``cmd`` clears the base Cmd.
    """
    config, layers, added = _base_parts(base)
    c: dict[str, Any] = config.get("config") or {}
    config["config"] = c
    if user is not None:
        c["User"] = str(user)
    if env is not None:
        c["Env"] = _merge_env(c.get("Env") or [], env)
    if entrypoint is not None:
        c["Entrypoint"] = list(entrypoint)
        if cmd is None:
            c.pop("Cmd", None)
    if cmd is not None:
        c["Cmd"] = list(cmd)
    if working_dir is not None:
        c["WorkingDir"] = working_dir
    if exposed_ports is not None:
        ports = dict(c.get("ExposedPorts") or {})
        ports.update({_port(p): {} for p in exposed_ports})
        c["ExposedPorts"] = ports
    if healthcheck is not None:
        hc = healthcheck.to_config() if isinstance(healthcheck, Healthcheck) else dict(healthcheck)
        c["Healthcheck"] = hc
        # Podman 4 reads a Docker image's health check from container_config only.
        cc = config.get("container_config") or {}
        config["container_config"] = {**cc, "Healthcheck": hc}
    if labels is not None:
        c["Labels"] = {**(c.get("Labels") or {}), **labels}
    if volumes:
        c["Volumes"] = {**(c.get("Volumes") or {}), **{v: {} for v in volumes}}
    if stop_signal is not None:
        c["StopSignal"] = stop_signal
    if created is not None:
        config["created"] = created
    if author is not None:
        config["author"] = author
    return _Mutated(_unwrap(base), config, layers, added, _annotations(base))


def with_annotations(base: Image, annotations: Mapping[str, str]) -> Image:
    """``base`` whose manifest carries ``annotations`` (merged over earlier ones).

    The config and layers are unchanged; the manifest, and so the digest, changes.
    """
    config, layers, added = _base_parts(base)
    merged = {**_annotations(base), **annotations}
    return _Mutated(_unwrap(base), config, layers, added, merged)
