"""OCI image layout directories (image-spec ``image-layout.md``): source and sink."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from torchslim.atomic import atomic_output
from torchslim.cache import split_digest
from torchslim.config import Platform
from torchslim.errors import BuildError, IntegrityError, TorchslimError
from torchslim.oci.blobio import check_bytes, copy_stream, read_capped, sha256_bytes, verified
from torchslim.oci.image import (
    Image,
    StoredImage,
    canonical_json,
    check_layers_match_config,
    diff_ids_of,
    index_entries,
    manifest_parts,
    parse_json_object,
    platform_of,
)
from torchslim.oci.index import image_index, index_bytes, index_entry
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.limits import CONFIG_MAX, MANIFEST_MAX
from torchslim.oci.media import (
    CONTAINERD_NAME_ANNOTATION,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_LAYOUT_VERSION,
    REF_NAME_ANNOTATION,
)

DEFAULT_PLATFORM = Platform("linux", "amd64")


def _blob_path(root: Path, digest: str) -> Path:
    algo, hexpart = split_digest(digest, str(root))
    return root / "blobs" / algo / hexpart


def open_layout_blob(root: Path, digest: str, what: str) -> BinaryIO:
    """The blob ``digest`` of the layout at ``root``, opened only if it lies under ``blobs/``
    (a validated digest, and no symlink that leads out of it)."""
    path = _blob_path(root, digest)
    if not path.is_file():
        raise IntegrityError(
            f"{root}: {what} blob {digest} is missing from blobs/; the layout is incomplete, "
            "copy it again"
        )
    try:
        inside = path.resolve(strict=True).is_relative_to((root / "blobs").resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise IntegrityError(
            f"{root}: {what} blob {digest} is a link out of blobs/; the layout is hostile, "
            "refusing to read it"
        )
    try:
        return path.open("rb")
    except OSError as exc:
        raise BuildError(f"{root}: cannot read {what} blob {digest} ({exc.strerror})") from None


def read_layout_blob(root: Path, digest: str, what: str, cap: int, size: int = -1) -> bytes:
    """A small blob (manifest, index, config, document) of a layout: at most ``cap`` bytes,
    checked against ``digest``."""
    where = f"{root}: {what}"
    if size > cap:
        raise IntegrityError(f"{where} claims {size} bytes, over the {cap >> 20} MiB limit")
    with open_layout_blob(root, digest, what) as f:
        data = read_capped(f, cap, where)
    return check_bytes(data, digest, where)


def _read_blob(root: Path, desc: Descriptor, what: str, cap: int = MANIFEST_MAX) -> bytes:
    return read_layout_blob(root, desc.digest, what, cap, desc.size)


def read_index_json(root: Path) -> dict[str, Any]:
    """A layout's ``index.json``, at most MANIFEST_MAX bytes."""
    where = f"{root}/index.json"
    try:
        with (root / "index.json").open("rb") as f:
            data = read_capped(f, MANIFEST_MAX, where)
    except OSError as exc:
        raise BuildError(f"{where}: cannot read it ({exc.strerror})") from None
    return parse_json_object(data, where)


class LayoutImage(StoredImage):
    """One image in a layout; JSON is read at open, layer bytes on demand."""

    def __init__(self, root: Path, manifest: bytes, config: bytes, layers: list[Layer]) -> None:
        super().__init__(manifest, config, layers)
        self.root = root

    def blob_path(self, layer: Layer) -> Path:
        return _blob_path(self.root, layer.digest)

    def open_layer(self, layer: Layer) -> BinaryIO:
        d = layer.descriptor
        blob = open_layout_blob(self.root, d.digest, "layer")
        return verified(blob, d.digest, d.size, f"{self.root}: layer {d.digest}")


def _ref_names(desc: dict[str, Any]) -> list[str]:
    ann = desc.get("annotations")
    if not isinstance(ann, dict):
        return []
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
    index = read_index_json(root)
    # Referrers (SBOMs, provenance: see oci.referrers) sit beside images; they are not images.
    images = [m for m in index_entries(index, f"{root}/index.json") if "artifactType" not in m]
    desc = _pick(images, ref, str(root))
    # An image index (multi-platform): descend to the platform's manifest.
    seen = 0
    while str(desc.get("mediaType")) in INDEX_TYPES:
        seen += 1
        if seen > 4:
            raise BuildError(f"{root}: image indexes nest too deep")
        sub = _read_blob(root, Descriptor.from_json(desc, str(root)), "image index")
        sub_index = parse_json_object(sub, f"{root}: image index")
        desc = _pick_platform(index_entries(sub_index, f"{root}: image index"), platform, str(root))
    mdesc = Descriptor.from_json(desc, f"{root}/index.json")
    manifest_bytes = _read_blob(root, mdesc, "manifest")
    manifest = parse_json_object(manifest_bytes, f"{root}: manifest {mdesc.digest}")
    cdesc, ldescs = manifest_parts(manifest, str(root))
    config_bytes = _read_blob(root, cdesc, "config", CONFIG_MAX)
    config = parse_json_object(config_bytes, f"{root}: config {cdesc.digest}")
    layers_stub = [Layer(d, "", -1) for d in ldescs]
    check_layers_match_config(layers_stub, config, str(root))
    diff_ids = diff_ids_of(config)
    layers = [Layer(d, diff_ids[i], -1) for i, d in enumerate(ldescs)]
    for layer in layers:
        open_layout_blob(root, layer.digest, f"manifest {mdesc.digest[:19]} layer").close()
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
        index = read_index_json(root)
        first = (index_entries(index, str(root)) or [{}])[0]
        ann = first.get("annotations") or {}
        if not isinstance(ann, dict):
            return None
    except (OSError, TorchslimError, IndexError):
        return None
    name = ann.get(CONTAINERD_NAME_ANNOTATION) or ann.get(REF_NAME_ANNOTATION)
    return str(name) if name else None
