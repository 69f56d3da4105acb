"""Images in a registry as a lazy source: JSON at open, layer blobs into the cache on first read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from torchslim.cache import BlobStore
from torchslim.config import Platform
from torchslim.errors import BuildError, ConfigError, IntegrityError
from torchslim.oci.blobio import check_bytes, verified
from torchslim.oci.distribution import RegistryClient, pull_scope, registry_errors
from torchslim.oci.image import (
    StoredImage,
    check_layers_match_config,
    diff_ids_of,
    index_entries,
    manifest_parts,
    parse_json_object,
    platform_of,
)
from torchslim.oci.layer import Descriptor, Layer
from torchslim.oci.limits import CONFIG_MAX
from torchslim.oci.media import INDEX_TYPES, MANIFEST_TYPES
from torchslim.oci.reference import Reference, as_reference

DEFAULT_PLATFORM = Platform("linux", "amd64")


class RegistryImage(StoredImage):
    """An image in a registry; config held in memory, layers fetched into the store on open."""

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        manifest: bytes,
        config: bytes,
        layers: list[Layer],
        store: BlobStore,
    ) -> None:
        super().__init__(manifest, config, layers)
        self.client = client
        self.reference = ref  # pinned: ref.digest is this manifest's digest
        self._store = store

    def open_layer(self, layer: Layer) -> BinaryIO:
        d = layer.descriptor
        if not self._store.verify(d.digest):  # a corrupt cached copy is evicted and fetched
            self.client.fetch_blob(self.reference.repository, d, self._store)
        return verified(self._store.open(d.digest), d.digest, d.size, f"layer {d.digest}")


def _entry_platform(m: Mapping[str, Any]) -> Platform:
    return platform_of(dict(m.get("platform") or {}))


def _pick_platform(entries: list[dict[str, Any]], want: Platform, where: str) -> dict[str, Any]:
    # Attestation manifests (buildkit) carry platform unknown/unknown: not images.
    real = [m for m in entries if _entry_platform(m).os not in ("", "unknown")]
    for m in real:
        p = _entry_platform(m)
        if (p.os, p.arch) == (want.os, want.arch) and (
            want.variant is None or p.variant in (None, want.variant)
        ):
            return m
    have = sorted({str(_entry_platform(m)) for m in real})
    raise BuildError(
        f"{where} has no {want} image; it is built for {', '.join(have) or 'none'}; "
        "pick a base that lists your platform or change --platform"
    )


def read_registry_image(
    ref: Reference | str,
    *,
    platform: Platform = DEFAULT_PLATFORM,
    tls_verify: bool = True,
    store: BlobStore | None = None,
    client: RegistryClient | None = None,
) -> RegistryImage:
    """Resolve ``ref`` to the ``platform`` image; the result is pinned by manifest digest."""
    r = as_reference(ref)
    want = platform
    if client is not None and client.registry != r.registry:
        raise ConfigError(f"a client for {client.registry} cannot read {r}")
    cl = client or RegistryClient(r.registry, tls_verify=tls_verify)
    data, media, digest = cl.get_manifest(r.repository, r.identifier)
    where = str(r)
    hops = 0
    while media in INDEX_TYPES:
        hops += 1
        if hops > 2:
            raise BuildError(f"{where}: image indexes nest too deep")
        index = parse_json_object(data, f"{where} index")
        entry = _pick_platform(index_entries(index, f"{where} index"), want, where)
        desc = Descriptor.from_json(entry, f"{where} index")
        data, media, digest = cl.get_manifest(r.repository, desc.digest)
    manifest = parse_json_object(data, f"{where} manifest")
    if media not in MANIFEST_TYPES:
        raise BuildError(
            f"{where} is a {media or 'schema ' + str(manifest.get('schemaVersion'))} manifest; "
            "only OCI and Docker schema 2 images are supported, re-push it with a newer tool"
        )
    cdesc, ldescs = manifest_parts(manifest, where)
    config_bytes = _fetch_small(cl, r.repository, cdesc, f"{where} config")
    config = parse_json_object(config_bytes, f"{where} config")
    got = platform_of(config)
    if (got.os, got.arch) != (want.os, want.arch):
        raise BuildError(
            f"{where} is a {got} image but {want} was asked for; "
            "pick a base built for your platform or change --platform"
        )
    check_layers_match_config([Layer(d, "") for d in ldescs], config, where)
    diff_ids = diff_ids_of(config)
    layers = [Layer(d, diff_ids[i]) for i, d in enumerate(ldescs)]
    pinned = r.with_digest(digest)
    return RegistryImage(cl, pinned, data, config_bytes, layers, store or BlobStore())


def _fetch_small(cl: RegistryClient, repo: str, desc: Descriptor, what: str) -> bytes:
    if desc.size > CONFIG_MAX:
        raise IntegrityError(f"{what} claims {desc.size} bytes; a config is never that big")
    resp, body = cl.get_small(
        f"/v2/{repo}/blobs/{desc.digest}", scope=pull_scope(repo), cap=CONFIG_MAX, what=what
    )
    if resp.status_code != 200:
        raise BuildError(f"{what} {desc.digest}: registry answered {registry_errors(resp, body)}")
    return check_bytes(body, desc.digest, what)
