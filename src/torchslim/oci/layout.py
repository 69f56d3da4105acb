"""OCI image layout directories (image-spec ``image-layout.md``): source and sink."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from torchslim.atomic import atomic_output
from torchslim.cache import split_digest
from torchslim.config import Platform
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.blobio import check_bytes, copy_stream, sha256_bytes, verified
from torchslim.oci.image import (
    Image,
    StoredImage,
    canonical_json,
    check_layers_match_config,
    parse_json_object,
    platform_of,
)
from torchslim.oci.index import image_index, index_bytes, index_entry
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.media import (
    CONTAINERD_NAME_ANNOTATION,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_LAYOUT_VERSION,
    REF_NAME_ANNOTATION,
)

DEFAULT_PLATFORM = Platform("linux", "amd64")


def _blob_path(root: Path, digest: str) -> Path:
    algo, hexpart = split_digest(digest)
    return root / "blobs" / algo / hexpart


def _read_blob(root: Path, desc: Descriptor, what: str) -> bytes:
    path = _blob_path(root, desc.digest)
    if not path.is_file():
        raise IntegrityError(
            f"{root}: {what} blob {desc.digest} is missing from blobs/; the layout is incomplete, "
            "copy it again"
        )
    return check_bytes(path.read_bytes(), desc.digest, f"{root}: {what}")


class LayoutImage(StoredImage):
    """One image in a layout; JSON is read at open, layer bytes on demand."""

    def __init__(self, root: Path, manifest: bytes, config: bytes, layers: list[Layer]) -> None:
        super().__init__(manifest, config, layers)
        self.root = root

    def blob_path(self, layer: Layer) -> Path:
        return _blob_path(self.root, layer.digest)

    def open_layer(self, layer: Layer) -> BinaryIO:
        path = self.blob_path(layer)
        if not path.is_file():
            raise IntegrityError(
                f"{self.root}: layer blob {layer.digest} is missing; the layout is incomplete"
            )
        d = layer.descriptor
        return verified(path.open("rb"), d.digest, d.size, f"{self.root}: layer {d.digest}")


def _ref_names(desc: dict[str, Any]) -> list[str]:
    ann = desc.get("annotations") or {}
    return [str(ann[k]) for k in (REF_NAME_ANNOTATION, CONTAINERD_NAME_ANNOTATION) if k in ann]


def _pick(manifests: list[dict[str, Any]], ref: str | None, where: str) -> dict[str, Any]:
    if ref is not None:
        hits = [m for m in manifests if ref in _ref_names(m)]
        if not hits:
            known = sorted({n for m in manifests for n in _ref_names(m)})
            raise BuildError(
                f"{where} has no image named {ref!r}; it has {known or 'no named images'}"
            )
        return hits[0]
    if len(manifests) == 1:
        return manifests[0]
    known = sorted({n for m in manifests for n in _ref_names(m)})
    raise BuildError(
        f"{where} holds {len(manifests)} images; name one of {known} (as path:ref)"
        if manifests
        else f"{where} holds no image; its index.json lists no manifests"
    )


def _pick_platform(
    manifests: list[dict[str, Any]], platform: Platform, where: str
) -> dict[str, Any]:
    for m in manifests:
        p = platform_of(m.get("platform") or {})
        if (p.os, p.arch) == (platform.os, platform.arch):
            return m
    have = [str(platform_of(m.get("platform") or {})) for m in manifests]
    raise BuildError(f"{where} has no {platform} image; it has {have}")


def read_oci_layout(
    path: Path, ref: str | None = None, *, platform: Platform = DEFAULT_PLATFORM
) -> Image:
    """Open one image of the layout at ``path`` (by ref name when it holds several)."""
    root = Path(path)
    if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
        raise BuildError(f"{root} is not an OCI image layout (no oci-layout or index.json)")
    index = parse_json_object((root / "index.json").read_bytes(), f"{root}/index.json")
    # Referrers (SBOMs, provenance: see oci.referrers) sit beside images; they are not images.
    images = [m for m in index.get("manifests") or [] if "artifactType" not in m]
    desc = _pick(images, ref, str(root))
    # An image index (multi-platform): descend to the platform's manifest.
    seen = 0
    while desc.get("mediaType") in INDEX_TYPES:
        seen += 1
        if seen > 4:
            raise BuildError(f"{root}: image indexes nest too deep")
        sub = _read_blob(root, Descriptor.from_json(desc, str(root)), "image index")
        sub_index = parse_json_object(sub, f"{root}: image index")
        desc = _pick_platform(list(sub_index.get("manifests") or []), platform, str(root))
    mdesc = Descriptor.from_json(desc, f"{root}/index.json")
    manifest_bytes = _read_blob(root, mdesc, "manifest")
    manifest = parse_json_object(manifest_bytes, f"{root}: manifest {mdesc.digest}")
    cdesc = Descriptor.from_json(manifest.get("config") or {}, f"{root}: manifest config")
    config_bytes = _read_blob(root, cdesc, "config")
    config = parse_json_object(config_bytes, f"{root}: config {cdesc.digest}")
    ldescs = [
        Descriptor.from_json(d, f"{root}: manifest layer") for d in manifest.get("layers") or []
    ]
    layers_stub = [Layer(d, "", -1) for d in ldescs]
    check_layers_match_config(layers_stub, config, str(root))
    diff_ids = config["rootfs"]["diff_ids"]
    layers = [Layer(d, str(diff_ids[i]), -1) for i, d in enumerate(ldescs)]
    for layer in layers:
        if not _blob_path(root, layer.digest).is_file():
            raise IntegrityError(
                f"{root}: layer blob {layer.digest} listed in manifest {mdesc.digest} is missing; "
                "the layout is incomplete, copy it again"
            )
    return LayoutImage(root, manifest_bytes, config_bytes, layers)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)


def write_blobs(image: Image, root: Path) -> None:
    """Config, manifest and every layer of ``image`` into ``root/blobs/sha256/``."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    config = image.config_bytes()
    manifest = image.manifest_bytes()
    _write_file(_blob_path(root, image.digest()), manifest)
    _write_file(_blob_path(root, sha256_bytes(config)), config)
    for layer in image.layers():
        target = _blob_path(root, layer.digest)
        if target.exists():
            continue
        part = target.with_name(target.name + ".part")
        with image.open_layer(layer) as src, part.open("wb") as dst:
            copy_stream(src, dst)
        os.replace(part, target)


def write_oci_layout(
    image: Image, dest: Path, *, ref_name: str | None = None, force: bool = False
) -> None:
    """Write ``image`` as an OCI layout directory at ``dest``, atomically.

    ``ref_name`` becomes the ``org.opencontainers.image.ref.name`` annotation,
    so ``skopeo copy oci:DEST:REF`` and ``umoci --image DEST:REF`` find it.
    """
    dest = Path(dest)
    with atomic_output(dest, force=force) as tmp:
        tmp.mkdir(parents=True)
        _write_file(tmp / "oci-layout", canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
        write_blobs(image, tmp)
        ann = {REF_NAME_ANNOTATION: ref_name} if ref_name else None
        _write_file(tmp / "index.json", index_bytes([index_entry(image, ann)]))


def write_oci_index_layout(
    images: list[Image], dest: Path, *, ref_name: str | None = None, force: bool = False
) -> str:
    """Several platform images as one OCI layout: ``index.json`` names a nested image index.

    The nested index (one manifest per platform) is what a registry gets for a
    multi-platform push, so ``skopeo copy --all oci:DEST:REF`` keeps every platform.
    Returns the nested index's digest.
    """
    nested = image_index(images)
    digest = sha256_bytes(nested)
    dest = Path(dest)
    with atomic_output(dest, force=force) as tmp:
        tmp.mkdir(parents=True)
        _write_file(tmp / "oci-layout", canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
        for image in images:
            write_blobs(image, tmp)
        _write_file(_blob_path(tmp, digest), nested)
        ann = {REF_NAME_ANNOTATION: ref_name} if ref_name else None
        top = Descriptor(OCI_INDEX, digest, len(nested), ann).to_json()
        _write_file(tmp / "index.json", index_bytes([top]))
    return digest


def layout_ref_name(root: Path) -> str | None:
    """The name of a layout's first image (its ref-name or containerd name annotation)."""
    try:
        index = parse_json_object((root / "index.json").read_bytes(), f"{root}/index.json")
        first = (index.get("manifests") or [{}])[0]
        ann = (first.get("annotations") if isinstance(first, dict) else None) or {}
    except (OSError, IntegrityError, IndexError):
        return None
    name = ann.get(CONTAINERD_NAME_ANNOTATION) or ann.get(REF_NAME_ANNOTATION)
    return str(name) if name else None
