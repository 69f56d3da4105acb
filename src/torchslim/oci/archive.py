"""docker-archive tarballs (``docker save`` / ``docker load``): source and sink.

The sink writes the layout newer ``docker save`` produces: an OCI layout
(``oci-layout``, ``index.json``, ``blobs/sha256/*``) that also carries the
classic ``manifest.json``, so ``docker load``, ``podman load`` and OCI tools
all read it. The source reads that and the legacy ``<id>/layer.tar`` form,
lazily: it indexes member offsets and slices layer bytes out on demand.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from torchslim.atomic import atomic_output
from torchslim.cache import CHUNK
from torchslim.digests import sha256_stream
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.blobio import check_bytes, open_slice, sha256_bytes, verified
from torchslim.oci.image import (
    Image,
    StoredImage,
    canonical_json,
    check_layers_match_config,
    diff_ids_of,
    index_entries,
    manifest_parts,
    parse_json,
    parse_json_object,
)
from torchslim.oci.index import index_bytes, index_entry
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.limits import CONFIG_MAX, MANIFEST_MAX
from torchslim.oci.media import (
    CONTAINERD_NAME_ANNOTATION,
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    DOCKER_MANIFEST,
    OCI_LAYER_GZIP,
    OCI_LAYER_ND_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYOUT_VERSION,
    REF_NAME_ANNOTATION,
    sniff_layer_type,
)

MANIFEST_JSON_MAX = MANIFEST_MAX  # a manifest.json larger than this is not an archive
MEMBERS_MAX = 1 << 16  # an image archive holds a few files per layer, not millions
_BLOB_NAME = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_CONFIG_NAME = re.compile(r"^([0-9a-f]{64})\.json$")


def normalize_ref(ref: str) -> str:
    """``app:v1`` → ``docker.io/library/app:v1``, as Docker spells a short name in full."""
    name, tag = ref, ""
    if "@" not in ref:
        slash = ref.rfind("/")
        colon = ref.rfind(":")
        if colon > slash:
            name, tag = ref[:colon], ref[colon:]
        else:
            tag = ":latest"
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name + tag


def _tag_of(ref: str) -> str:
    full = normalize_ref(ref)
    slash = full.rfind("/")
    colon = full.rfind(":")
    return full[colon + 1 :] if colon > slash else "latest"


# ---------------------------------------------------------------- sink


def _tarinfo(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    ti.mode = 0o755 if directory else 0o644
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.size = size
    return ti


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


_DOCKER_LAYER = {
    OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
    OCI_LAYER_TAR: DOCKER_LAYER_TAR,
    OCI_LAYER_ND_GZIP: DOCKER_FOREIGN_LAYER,
    DOCKER_LAYER_GZIP: DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR: DOCKER_LAYER_TAR,
    DOCKER_FOREIGN_LAYER: DOCKER_FOREIGN_LAYER,
}


def docker_manifest(image: Image) -> bytes | None:
    """The image's manifest in Docker schema 2 form; None when a layer has no Docker type (zstd).

    Podman keeps the manifest type it loaded and honours a health check only
    for Docker-typed images, so a docker-archive carries this form.
    """
    layers = []
    for lay in image.layers():
        mt = _DOCKER_LAYER.get(lay.descriptor.media_type)
        if mt is None:
            return None
        layers.append(Descriptor(mt, lay.digest, lay.descriptor.size).to_json())
    config = image.config_bytes()
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": Descriptor(DOCKER_CONFIG, sha256_bytes(config), len(config)).to_json(),
            "layers": layers,
        }
    )


def write_docker_archive(
    image: Image, dest: Path, *, repo_tags: list[str], force: bool = False
) -> None:
    """Write ``image`` as a ``docker load``-able tarball at ``dest``, atomically.

    Layer blobs go in as they are (gzip or zstd); the same image and tags
    always give the same archive bytes. With gzip (or uncompressed) layers the
    tarball is also an OCI layout whose index points at a Docker schema 2
    manifest. With zstd layers, which Docker's manifest cannot name, it holds
    only ``manifest.json``: podman then loads it through its docker-archive
    path, which still yields a Docker-typed image (health check honoured).
    """
    dest = Path(dest)
    config = image.config_bytes()
    config_name = f"blobs/sha256/{sha256_bytes(config).split(':', 1)[1]}"
    manifest = docker_manifest(image)
    layers = image.layers()
    layer_names = [f"blobs/sha256/{lay.digest.split(':', 1)[1]}" for lay in layers]
    save_manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}]
    index: bytes | None = None
    if manifest is not None:
        mdesc = Descriptor(DOCKER_MANIFEST, sha256_bytes(manifest), len(manifest))
        entries = [
            index_entry(
                image,
                {CONTAINERD_NAME_ANNOTATION: normalize_ref(t), REF_NAME_ANNOTATION: _tag_of(t)},
                manifest=mdesc,
            )
            for t in repo_tags
        ] or [index_entry(image, manifest=mdesc)]
        index = index_bytes(entries)
    with atomic_output(dest, force=force) as tmp, tmp.open("wb") as f:
        tar = tarfile.TarFile(fileobj=f, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
        tar.addfile(_tarinfo("blobs", directory=True))
        tar.addfile(_tarinfo("blobs/sha256", directory=True))
        written: set[str] = set()
        for lay, name in zip(layers, layer_names, strict=True):
            if name in written:
                continue
            written.add(name)
            with image.open_layer(lay) as src:
                tar.addfile(_tarinfo(name, lay.descriptor.size), src)
        extra = [(config_name, config)]
        if manifest is not None:
            extra.append((f"blobs/sha256/{sha256_bytes(manifest).split(':', 1)[1]}", manifest))
        for name, data in extra:
            if name not in written:
                written.add(name)
                _add_bytes(tar, name, data)
        if index is not None:
            _add_bytes(tar, "index.json", index)
        _add_bytes(tar, "manifest.json", canonical_json(save_manifest))
        if index is not None:
            layout = {"imageLayoutVersion": OCI_LAYOUT_VERSION}
            _add_bytes(tar, "oci-layout", canonical_json(layout))
        tar.close()


# ---------------------------------------------------------------- source


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int


class _TarIndex:
    """Where each regular file of an uncompressed tar lies; links resolved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, _Member] = {}
        self._links: dict[str, str] = {}
        try:
            with path.open("rb") as f:
                head = f.read(4)
        except OSError as exc:
            raise BuildError(f"{path}: cannot read it ({exc.strerror})") from None
        if head.startswith(b"\x1f\x8b") or head.startswith(b"\x28\xb5\x2f\xfd"):
            raise BuildError(
                f"{path} is a compressed archive; decompress it first (gunzip / unzstd)"
            )
        try:
            with tarfile.open(path, "r:") as tar:
                for count, m in enumerate(tar):
                    if count >= MEMBERS_MAX:
                        raise IntegrityError(f"{path}: over {MEMBERS_MAX} files, not an image")
                    name = posixpath.normpath(m.name.lstrip("/"))
                    if m.isreg():
                        self.files[name] = _Member(m.offset_data, m.size)
                    elif m.issym():
                        target = posixpath.join(posixpath.dirname(name), m.linkname)
                        self._links[name] = posixpath.normpath(target)
                    elif m.islnk():
                        self._links[name] = posixpath.normpath(m.linkname.lstrip("/"))
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise BuildError(f"{path} is not a readable tar archive ({exc})") from None

    def find(self, name: str) -> _Member | None:
        name = posixpath.normpath(name.lstrip("/"))
        for _ in range(16):
            if name in self.files:
                return self.files[name]
            if name not in self._links:
                return None
            name = self._links[name]
        return None

    def need(self, name: str, what: str) -> _Member:
        m = self.find(name)
        if m is None:
            raise IntegrityError(
                f"{self.path}: {what} {name!r} named in manifest.json is missing from the "
                "archive; the archive is incomplete, save it again"
            )
        return m

    def read(self, m: _Member, cap: int, what: str) -> bytes:
        """A small member (JSON) whole: refused when it is larger than ``cap``."""
        if m.size > cap:
            raise IntegrityError(
                f"{self.path}: {what} is {m.size} bytes, over the {cap >> 20} MiB limit; "
                "the archive is corrupt or hostile"
            )
        with open_slice(self.path, m.offset, m.size) as f:
            return f.read()

    def read_name(self, name: str, what: str, cap: int = MANIFEST_MAX) -> bytes:
        return self.read(self.need(name, what), cap, what)


class ArchiveImage(StoredImage):
    def __init__(
        self,
        tar: _TarIndex,
        config: bytes,
        layers: list[Layer],
        where: dict[str, _Member],
        manifest: bytes | None,
    ) -> None:
        super().__init__(manifest, config, layers)
        self._tar = tar
        self._where = where

    def open_layer(self, layer: Layer) -> BinaryIO:
        m = self._where.get(layer.digest)
        if m is None:
            raise BuildError(f"layer {layer.digest} is not part of {self._tar.path}")
        d = layer.descriptor
        return verified(
            open_slice(self._tar.path, m.offset, m.size),
            d.digest,
            d.size,
            f"{self._tar.path}: layer {d.digest}",
        )


def _entry_ok(e: Any) -> bool:
    """One ``manifest.json`` entry: {Config: str, RepoTags: [str], Layers: [str]}."""
    if not isinstance(e, dict) or not isinstance(e.get("Config", ""), str):
        return False
    lists = [e.get("RepoTags") or [], e.get("Layers") or []]
    return all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists)


def _pick_entry(entries: list[dict[str, Any]], ref: str | None, path: Path) -> dict[str, Any]:
    if ref is not None:
        want = normalize_ref(ref)
        for e in entries:
            if any(normalize_ref(t) == want for t in e.get("RepoTags") or []):
                return e
        tags = [t for e in entries for t in e.get("RepoTags") or []]
        raise BuildError(f"{path} has no image tagged {ref!r}; it has {tags}")
    if len(entries) == 1:
        return entries[0]
    tags = [t for e in entries for t in e.get("RepoTags") or []]
    raise BuildError(f"{path} holds {len(entries)} images; choose one of {tags}")


def _oci_manifest_for(tar: _TarIndex, config_digest: str) -> tuple[bytes, list[Descriptor]] | None:
    """The archive's OCI manifest for this config, when it has an index.json that lists one."""
    if tar.find("index.json") is None:
        return None
    where = f"{tar.path}: index.json"
    index = parse_json_object(tar.read_name("index.json", "index.json"), where)
    for entry in index_entries(index, where):
        d = Descriptor.from_json(entry, where)
        m = tar.find(f"blobs/sha256/{d.digest.split(':', 1)[-1]}")
        if m is None or m.size > MANIFEST_JSON_MAX:
            continue
        data = tar.read(m, MANIFEST_MAX, "manifest")
        check_bytes(data, d.digest, f"{tar.path}: manifest")
        manifest = parse_json_object(data, f"{tar.path}: manifest")
        cdesc, layers = manifest_parts(manifest, f"{tar.path}: manifest {d.digest[:19]}")
        if cdesc.digest == config_digest:
            return data, layers
    return None


def _hash_member(tar: _TarIndex, m: _Member) -> str:
    with open_slice(tar.path, m.offset, m.size) as f:
        return sha256_stream(f)


def read_docker_archive(path: Path, ref: str | None = None) -> Image:
    """Open the image in a ``docker save`` tarball (``ref`` picks one when it holds several)."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"{path} does not exist or is not a file; give a docker-archive tarball")
    tar = _TarIndex(path)
    if tar.find("manifest.json") is None:
        raise BuildError(f"{path} is not a docker-archive (no manifest.json)")
    entries = parse_json(tar.read_name("manifest.json", "manifest.json"), f"{path}: manifest.json")
    if not isinstance(entries, list) or not all(_entry_ok(e) for e in entries):
        raise IntegrityError(f"{path}: manifest.json is not a list of image entries; it is corrupt")
    entry = _pick_entry(entries, ref, path)
    config_name = str(entry.get("Config", ""))
    config = tar.read_name(config_name, "config", CONFIG_MAX)
    named = _BLOB_NAME.match(config_name) or _CONFIG_NAME.match(posixpath.basename(config_name))
    config_digest = sha256_bytes(config)
    if named:
        check_bytes(config, "sha256:" + named.group(1), f"{path}: config")
    cfg = parse_json_object(config, f"{path}: config")
    layer_names = [str(n) for n in entry.get("Layers") or []]
    stubs = [Layer(Descriptor(OCI_LAYER_TAR, "", 0), "", -1) for _ in layer_names]
    check_layers_match_config(stubs, cfg, str(path))
    diff_ids = diff_ids_of(cfg)
    members = [tar.need(n, "layer") for n in layer_names]

    oci = _oci_manifest_for(tar, config_digest)
    if oci is not None and len(oci[1]) == len(members):
        manifest_bytes: bytes | None = oci[0]
        descs = oci[1]
    else:
        manifest_bytes = None
        descs = []
        for name, m, diff_id in zip(layer_names, members, diff_ids, strict=True):
            with open_slice(path, m.offset, min(m.size, 4)) as f:
                media_type = sniff_layer_type(f.read(4))
            blob = _BLOB_NAME.match(name)
            if blob:
                digest = "sha256:" + blob.group(1)
            elif media_type == OCI_LAYER_TAR:
                digest = diff_id
            else:
                digest = _hash_member(tar, m)
            descs.append(Descriptor(media_type, digest, m.size))
    layers = [Layer(d, diff_ids[i], -1) for i, d in enumerate(descs)]
    where = {lay.digest: m for lay, m in zip(layers, members, strict=True)}
    return ArchiveImage(tar, config, layers, where, manifest_bytes)


def archive_repo_tag(path: Path) -> str | None:
    """The first RepoTag of a docker-archive's ``manifest.json``, if it names one."""
    try:
        with tarfile.open(path, "r:") as tar:
            f = tar.extractfile(tar.getmember("manifest.json"))
            entries = parse_json(f.read(MANIFEST_JSON_MAX) if f is not None else b"[]", "x")
        tags = entries[0].get("RepoTags") or [] if isinstance(entries, list) and entries else []
        return str(tags[0]) if tags else None
    except (OSError, KeyError, tarfile.TarError, AttributeError, IndexError, IntegrityError):
        return None
