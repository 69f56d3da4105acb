"""Reading the build cache from registries (``--cache-from``): a miss is never an error.

For a layer key the local cache lacks, each source repository is asked for the tag of
that key, in order. An entry is used only when its config says it is that key, its
manifest's one layer is the layer it describes, the blob hashes to its digest as it
downloads, and the tar inside hashes to its diff id. Anything else (absent, foreign,
corrupt, a registry that fails or dies half-way) is a miss: the build makes the layer
itself, and says why in one line. A source that fails to answer is not asked again in
this build. The files are unpacked only when the proof needs them (``LayerCache.tree``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torchslim.buildcache.entry import (
    ENTRY_CONFIG,
    LEARNED_CONFIG,
    LEARNED_TAG_PREFIX,
    PROOF_CONFIG,
    PROOF_TAG_PREFIX,
    AnyEntry,
    CacheEntry,
    LearnedEntry,
    ProofEntry,
    config_descriptor,
    decode,
    decode_learned,
    decode_proof,
    tag_for,
)
from torchslim.cache import BlobStore
from torchslim.errors import ConfigError, IntegrityError, NetworkError, TorchslimError
from torchslim.oci.blobio import check_bytes
from torchslim.oci.distribution import ACCEPT, RegistryClient, pull_scope, registry_errors
from torchslim.oci.limits import MANIFEST_MAX
from torchslim.oci.media import OCI_MANIFEST
from torchslim.oci.reference import Reference, parse_reference
from torchslim.oci.tarstream import LayerStats
from torchslim.proof.result import Proof
from torchslim.sbom.layermeta import layer_meta_store
from torchslim.sbom.tree import read_layer_meta

Warn = Callable[[str], None]
# Reads one entry's manifest and config (the source, the key, where) into the entry.
_Reader = Callable[[Reference, str, str, bytes, bytes], AnyEntry]
# Each kind of entry's config media type, by its tag's prefix.
_CONFIG_BY_PREFIX = {PROOF_TAG_PREFIX: PROOF_CONFIG, LEARNED_TAG_PREFIX: LEARNED_CONFIG}


def cache_repository(text: str, option: str) -> Reference:
    """A ``--cache-from``/``--cache-to`` value: a repository (each entry is tagged by key)."""
    ref = parse_reference(text)
    bare = text.removeprefix("docker://").rsplit("/", 1)[-1]
    if ":" in bare or "@" in text:
        raise ConfigError(
            f"{option} {text}: name a repository without a tag or digest (torchslim tags "
            f"each entry by its key), e.g. {option} {ref.registry}/{ref.repository}"
        )
    return Reference(ref.registry, ref.repository)


@dataclass
class FetchStats:
    """What the cache sources served this build."""

    hits: int = 0  # layers
    misses: int = 0
    proofs: int = 0  # proof records reused
    learned: int = 0  # what earlier proofs learned, reused
    bytes: int = 0
    requests: int = 0
    warnings: list[str] = field(default_factory=list)


class CacheSources:
    """The ``--cache-from`` repositories, asked in order for layers the local cache lacks."""

    def __init__(
        self,
        refs: Sequence[Reference],
        store: BlobStore,
        *,
        tls_verify: bool,
        warn: Warn,
    ) -> None:
        self.refs = list(refs)
        self.store = store
        self.tls_verify = tls_verify
        self._warn = warn
        self._clients: dict[str, RegistryClient] = {}
        self._dead: set[Reference] = set()
        self.stats = FetchStats()

    def _client(self, registry: str) -> RegistryClient:
        if registry not in self._clients:
            # Few retries: a cache that does not answer costs a miss, not minutes of backoff.
            self._clients[registry] = RegistryClient(
                registry, tls_verify=self.tls_verify, retries=1, timeout_s=120.0
            )
        return self._clients[registry]

    def close(self) -> None:
        for cl in self._clients.values():
            cl.close()
        self._clients.clear()

    def warn(self, line: str) -> None:
        self.stats.warnings.append(line)
        self._warn(line)

    def fetch(self, key: str, name: str) -> CacheEntry | None:
        """``key``'s entry from the first source that has a good one (its blob put in the
        store, digest and diff id checked), else None."""
        entry = self._first(tag_for(key), f"layer {name}", "building the layer", self._layer, key)
        if isinstance(entry, CacheEntry):
            self.stats.hits += 1
            return entry
        self.stats.misses += 1
        return None

    def fetch_proof(self, key: str) -> ProofEntry | None:
        """The record of a proof with this key (the image digest, the checker, the
        requests), else None."""
        tag = tag_for(key, PROOF_TAG_PREFIX)
        entry = self._first(tag, "proof record", "proving the image here", self._proof, key)
        if isinstance(entry, ProofEntry):
            self.stats.proofs += 1
            return entry
        return None

    def fetch_learned(self, key: str, kind: str) -> LearnedEntry | None:
        """What earlier proofs learned under ``key`` (``LearnedEntry``), else None."""

        def read(_ref: Reference, key: str, where: str, _m: bytes, config: bytes) -> AnyEntry:
            return decode_learned(config, key, kind, where)

        tag = tag_for(key, LEARNED_TAG_PREFIX)
        entry = self._first(tag, kind, "learning it by serving", read, key)
        if isinstance(entry, LearnedEntry):
            self.stats.learned += 1
            return entry
        return None

    def _first(
        self, tag: str, what: str, fallback: str, read: _Reader, key: str
    ) -> AnyEntry | None:
        for ref in self.refs:
            if ref in self._dead:
                continue
            where = f"cache {ref.registry}/{ref.repository}:{tag[:16]}… ({what})"
            try:
                found = self._entry(ref, tag, where)
                entry = read(ref, key, where, *found) if found is not None else None
            except TorchslimError as exc:
                if _is_source_down(exc):
                    self._dead.add(ref)
                    self.warn(
                        f"--cache-from {ref.registry}/{ref.repository}: {exc}; building "
                        "without this cache"
                    )
                else:
                    self.warn(f"{where}: not used ({exc}); {fallback}")
                continue
            if entry is not None:
                return entry
        return None

    def _entry(self, ref: Reference, tag: str, where: str) -> tuple[bytes, bytes] | None:
        """The manifest and config under ``tag``, or None when the tag is absent."""
        cl = self._client(ref.registry)
        repo = ref.repository
        self.stats.requests += 1
        resp, manifest = cl.get_small(
            f"/v2/{repo}/manifests/{tag}",
            scope=pull_scope(repo),
            cap=MANIFEST_MAX,
            what=f"{where} manifest",
            headers={"Accept": f"{OCI_MANIFEST}, {ACCEPT}"},
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise _SourceDown(f"the registry answered {registry_errors(resp, manifest)}")
        self.stats.bytes += len(manifest)
        media = next(
            (m for prefix, m in _CONFIG_BY_PREFIX.items() if tag.startswith(prefix)), ENTRY_CONFIG
        )
        desc = config_descriptor(manifest, where, media)
        self.stats.requests += 1
        resp, config = cl.get_small(
            f"/v2/{repo}/blobs/{desc.digest}",
            scope=pull_scope(repo),
            cap=desc.size,
            what=f"{where} config",
        )
        if resp.status_code != 200:
            raise _SourceDown(f"its config: the registry answered {registry_errors(resp, config)}")
        check_bytes(config, desc.digest, f"{where} config")
        self.stats.bytes += len(config)
        return manifest, config

    def _layer(
        self, ref: Reference, key: str, where: str, manifest: bytes, config: bytes
    ) -> CacheEntry:
        entry = decode(manifest, config, key, where)
        _check_report(entry, where)
        if not self.store.verify(entry.layer.digest):
            self.stats.requests += 1
            cl = self._client(ref.registry)
            cl.fetch_blob(ref.repository, entry.layer.descriptor, self.store)  # digest checked
            self.stats.bytes += entry.layer.descriptor.size
        self._check_layer(entry, where)
        return entry

    def _proof(
        self, ref: Reference, key: str, where: str, manifest: bytes, config: bytes
    ) -> ProofEntry:
        entry = decode_proof(config, key, where)
        try:
            Proof.from_dict(entry.proof)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(
                f"{where}: the record is malformed ({type(exc).__name__})"
            ) from None
        return entry

    def _check_layer(self, entry: CacheEntry, where: str) -> None:
        """Read the stored blob once: its tar must hash to the entry's diff id. The same pass
        keeps the layer's SBOM metadata, so the build's SBOM reads it no second time."""
        stats = LayerStats(hash_uncompressed=True)
        with self.store.open(entry.layer.digest) as blob:
            meta = read_layer_meta(blob, where, stats)
        if stats.diff_id != entry.layer.diff_id:
            raise IntegrityError(
                f"{where}: its layer decompresses to {stats.diff_id}, not the diff id "
                f"{entry.layer.diff_id} the entry claims"
            )
        layer_meta_store().put(entry.layer.digest, meta)


class _SourceDown(TorchslimError):
    """The source answered with an error for a request it should serve."""


def _is_source_down(exc: TorchslimError) -> bool:
    return isinstance(exc, _SourceDown | NetworkError)


def _check_report(entry: CacheEntry, where: str) -> None:
    """The entry's report must read as a local entry's does (it is shown to the user)."""
    from torchslim.build.report import LayerReport  # the build's module; imported late

    try:
        LayerReport.of(entry.name, entry.layer, True, 0.0, entry.extra)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntegrityError(f"{where}: its report is malformed ({type(exc).__name__})") from None


def entry_dict(entry: CacheEntry) -> dict[str, Any]:
    """The local layer cache's form of an entry."""
    return {"layer": entry.layer.to_dict(), "extra": entry.extra}
