"""One build-cache entry as a registry holds it: a plain OCI image manifest, tagged by its key.

BuildKit's ``image-manifest=true`` form, which every registry accepts: the manifest's
config is a small JSON document of our own media type (what the entry is, its key, the
layer's descriptor and diff id, and what the build reports about it), and its one layer
is the image's own layer blob, so a push of the image mounts it instead of uploading it.

Nothing here is trusted by name: the key is recomputed by the build that reads the entry,
and ``decode`` accepts an entry only when it says it is that key and its manifest's layer
is the layer it describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchslim.digests import split_digest
from torchslim.errors import IntegrityError
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.image import canonical_json, parse_json_object
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.media import OCI_MANIFEST

ENTRY_CONFIG = "application/vnd.torchslim.cache.layer.v1+json"
PROOF_CONFIG = "application/vnd.torchslim.cache.proof.v1+json"
LEARNED_CONFIG = "application/vnd.torchslim.cache.learned.v1+json"
ENTRY_FORMAT = 1
TAG_PREFIX = "tsl-"
PROOF_TAG_PREFIX = "tsp-"
LEARNED_TAG_PREFIX = "tsn-"


def tag_for(key: str, prefix: str = TAG_PREFIX) -> str:
    """The tag of ``key``'s entry (a tag holds at most 128 characters; this is 68)."""
    _, hexpart = split_digest(key, "cache key")
    return prefix + hexpart


def _manifest(config: bytes, media_type: str, layers: list[Descriptor], title: str) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Descriptor(media_type, sha256_bytes(config), len(config)).to_json(),
            "layers": [d.to_json() for d in layers],
            "annotations": {"org.opencontainers.image.title": title},
        }
    )


@dataclass(frozen=True)
class CacheEntry:
    """A finished layer by its input key, with what the build reports about it."""

    key: str
    name: str
    layer: Layer
    extra: dict[str, Any]

    replaceable = False  # a layer's key says all of it

    def config_bytes(self) -> bytes:
        return canonical_json(
            {
                "format": ENTRY_FORMAT,
                "key": self.key,
                "name": self.name,
                "layer": self.layer.to_dict(),
                "extra": self.extra,
            }
        )

    @property
    def tag(self) -> str:
        return tag_for(self.key)

    @property
    def blobs(self) -> list[Descriptor]:
        return [self.layer.descriptor]

    def manifest_bytes(self) -> bytes:
        title = f"torchslim layer {self.name}"
        return _manifest(self.config_bytes(), ENTRY_CONFIG, self.blobs, title)


@dataclass(frozen=True)
class ProofEntry:
    """The record of a proof by its key (the image digest, the checking code, the requests):
    a build with the same key reuses it instead of proving the same image again."""

    key: str
    proof: dict[str, Any]

    replaceable = False

    @property
    def tag(self) -> str:
        return tag_for(self.key, PROOF_TAG_PREFIX)

    @property
    def blobs(self) -> list[Descriptor]:
        return []

    def config_bytes(self) -> bytes:
        return canonical_json({"format": ENTRY_FORMAT, "key": self.key, "proof": self.proof})

    def manifest_bytes(self) -> bytes:
        return _manifest(self.config_bytes(), PROOF_CONFIG, [], "torchslim proof record")


@dataclass(frozen=True)
class LearnedEntry:
    """What served proofs learned about a service, by its key (``kind``: the modules it
    loaded, the files it opened, the slimming they had to undo): a fresh runner starts
    from it, as a runner with a history does, instead of serving once more to learn it.

    Unlike a layer or a proof record, what is known under one key can grow (a later
    proof sees more), so ``--cache-to`` replaces an entry whose manifest differs."""

    key: str
    kind: str
    data: list[Any]

    replaceable = True

    @property
    def tag(self) -> str:
        return tag_for(self.key, LEARNED_TAG_PREFIX)

    @property
    def blobs(self) -> list[Descriptor]:
        return []

    def config_bytes(self) -> bytes:
        return canonical_json(
            {"format": ENTRY_FORMAT, "key": self.key, "kind": self.kind, "data": self.data}
        )

    def manifest_bytes(self) -> bytes:
        return _manifest(self.config_bytes(), LEARNED_CONFIG, [], f"torchslim {self.kind}")


# Anything --cache-to writes.
AnyEntry = CacheEntry | ProofEntry | LearnedEntry


def decode_learned(config: bytes, key: str, kind: str, where: str) -> LearnedEntry:
    """What is learned under ``key``, when the entry says it is that key and kind."""
    doc = parse_json_object(config, f"{where} config")
    if doc.get("format") != ENTRY_FORMAT or doc.get("key") != key or doc.get("kind") != kind:
        raise IntegrityError(f"{where}: the entry is for another key, kind or format")
    data = doc.get("data")
    if not isinstance(data, list):
        raise IntegrityError(f"{where}: the entry holds no list")
    return LearnedEntry(key, kind, data)


def decode_proof(config: bytes, key: str, where: str) -> ProofEntry:
    """The proof record, when it is ``key``'s."""
    doc = parse_json_object(config, f"{where} config")
    if doc.get("format") != ENTRY_FORMAT or doc.get("key") != key:
        raise IntegrityError(f"{where}: the record is for another key or format")
    proof = doc.get("proof")
    if not isinstance(proof, dict):
        raise IntegrityError(f"{where}: the record holds no proof")
    return ProofEntry(key, proof)


def config_descriptor(manifest: bytes, where: str, media_type: str = ENTRY_CONFIG) -> Descriptor:
    """The config descriptor of an entry's manifest; IntegrityError when it is not an entry."""
    doc = parse_json_object(manifest, where)
    config = doc.get("config")
    if doc.get("mediaType") != OCI_MANIFEST or not isinstance(config, dict):
        raise IntegrityError(f"{where}: not an OCI image manifest")
    desc = Descriptor.from_json(config, f"{where} config")
    if desc.media_type != media_type:
        raise IntegrityError(f"{where}: its config is {desc.media_type}, not a torchslim entry")
    if desc.size > 4 << 20:
        raise IntegrityError(f"{where}: its config claims {desc.size} bytes")
    return desc


def decode(manifest: bytes, config: bytes, key: str, where: str) -> CacheEntry:
    """The entry, when it is ``key``'s and its manifest carries exactly the layer it names."""
    doc = parse_json_object(config, f"{where} config")
    if doc.get("format") != ENTRY_FORMAT:
        raise IntegrityError(f"{where}: entry format {doc.get('format')!r}, not {ENTRY_FORMAT}")
    if doc.get("key") != key:
        raise IntegrityError(f"{where}: the entry is for another key ({doc.get('key')!r})")
    name, extra = doc.get("name"), doc.get("extra")
    if not isinstance(name, str) or not isinstance(extra, dict):
        raise IntegrityError(f"{where}: name or extra missing")
    layer = Layer.from_dict(doc.get("layer"))  # type: ignore[arg-type]  # checked inside
    layers = parse_json_object(manifest, where).get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        raise IntegrityError(f"{where}: an entry's manifest has exactly one layer")
    listed = Descriptor.from_json(layers[0], f"{where} layer")
    want = layer.descriptor
    if (listed.digest, listed.size, listed.media_type) != (want.digest, want.size, want.media_type):
        raise IntegrityError(f"{where}: its manifest's layer is not the layer its config names")
    return CacheEntry(key, name, layer, dict(extra))
