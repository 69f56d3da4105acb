"""Reading the build cache from registries (``--cache-from``): a miss is never an error.

For a layer key the local cache lacks, each source repository is asked for the tag of
that key, in order. An entry is used only when its config says it is that key, its
manifest's one layer is the layer it describes, the blob hashes to its digest as it
downloads, and the tar inside hashes to its diff id as it unpacks into the layer's
tree. Anything else (absent, foreign, corrupt, a registry that fails or dies half-way)
is a miss: the build makes the layer itself, and says why in one line. A source that
fails to answer is not asked again in this build.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchslim.buildcache.entry import CacheEntry, config_descriptor, decode, tag_for
from torchslim.cache import BlobStore
from torchslim.errors import ConfigError, IntegrityError, NetworkError, TorchslimError
from torchslim.oci.blobio import check_bytes
from torchslim.oci.distribution import ACCEPT, RegistryClient, pull_scope, registry_errors
from torchslim.oci.layer import Layer
from torchslim.oci.limits import MANIFEST_MAX
from torchslim.oci.media import OCI_MANIFEST
from torchslim.oci.reference import Reference, parse_reference
from torchslim.oci.unpack import unpack_layer_blob

Warn = Callable[[str], None]


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

    hits: int = 0
    misses: int = 0
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
        client: Callable[[str], RegistryClient] | None = None,
    ) -> None:
        self.refs = list(refs)
        self.store = store
        self.tls_verify = tls_verify
        self._warn = warn
        self._clients: dict[str, RegistryClient] = {}
        self._make_client = client or self._new_client
        self._dead: set[Reference] = set()
        self.stats = FetchStats()

    def _new_client(self, registry: str) -> RegistryClient:
        # Few retries: a cache that does not answer costs a miss, not minutes of backoff.
        return RegistryClient(registry, tls_verify=self.tls_verify, retries=1, timeout_s=120.0)

    def _client(self, registry: str) -> RegistryClient:
        if registry not in self._clients:
            self._clients[registry] = self._make_client(registry)
        return self._clients[registry]

    def close(self) -> None:
        for cl in self._clients.values():
            cl.close()
        self._clients.clear()

    def warn(self, line: str) -> None:
        self.stats.warnings.append(line)
        self._warn(line)

    def fetch(self, key: str, name: str, tree_for: Callable[[Layer], Path]) -> CacheEntry | None:
        """``key``'s entry from the first source that has a good one: its blob put in the
        store and its files unpacked (diff id checked) into ``tree_for(layer)``; else None."""
        for ref in self.refs:
            if ref in self._dead:
                continue
            where = f"cache {ref.registry}/{ref.repository}:{tag_for(key)[:16]}… (layer {name})"
            try:
                entry = self._fetch_one(ref, key, tree_for, where)
            except TorchslimError as exc:
                if _is_source_down(exc):
                    self._dead.add(ref)
                    self.warn(
                        f"--cache-from {ref.registry}/{ref.repository}: {exc}; building "
                        "without this cache"
                    )
                else:
                    self.warn(f"{where}: not used ({exc}); building the layer")
                continue
            if entry is not None:
                self.stats.hits += 1
                return entry
        self.stats.misses += 1
        return None

    def _fetch_one(
        self, ref: Reference, key: str, tree_for: Callable[[Layer], Path], where: str
    ) -> CacheEntry | None:
        cl = self._client(ref.registry)
        repo = ref.repository
        self.stats.requests += 1
        resp, manifest = cl.get_small(
            f"/v2/{repo}/manifests/{tag_for(key)}",
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
        desc = config_descriptor(manifest, where)
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
        entry = decode(manifest, config, key, where)
        _check_report(entry, where)
        if not self.store.verify(entry.layer.digest):
            self.stats.requests += 1
            cl.fetch_blob(repo, entry.layer.descriptor, self.store)  # digest checked
            self.stats.bytes += entry.layer.descriptor.size
        self._unpack(entry, tree_for(entry.layer), where)
        return entry

    def _unpack(self, entry: CacheEntry, tree: Path, where: str) -> None:
        """The layer's files into ``tree``, its diff id checked on the way (nothing is kept
        when it differs)."""
        if tree.is_dir():
            return
        tree.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".incoming-", dir=tree.parent))
        try:
            with self.store.open(entry.layer.digest) as blob:
                unpack_layer_blob(blob, entry.layer, scratch / "tree", what=where)
            with contextlib.suppress(OSError):  # another build placed the same tree first
                os.replace(scratch / "tree", tree)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


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
