"""The registry build cache: entries written and read back through a real docker-registry,
and every way an entry or a registry can be bad (foreign, tampered, cut off, gone)."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.proxy import DroppingProxy
from support.registry import Registry, start_registry

from torchslim.buildcache import CacheEntry, CacheSources, export_entries, tag_for
from torchslim.buildcache.entry import ENTRY_CONFIG, AnyEntry, LearnedEntry, decode
from torchslim.cache import BlobStore
from torchslim.errors import ConfigError, IntegrityError, NetworkError
from torchslim.oci.distribution import RegistryClient
from torchslim.oci.layer import Layer, write_layer_from_dir
from torchslim.oci.reference import Reference
from torchslim.sbom.layermeta import layer_meta_store

KEY = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _layer(store: BlobStore, root: Path, files: dict[str, bytes]) -> Layer:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return write_layer_from_dir(root, store, compression="gzip", mtime=0)


@pytest.fixture
def entry(tmp_path: Path) -> tuple[CacheEntry, BlobStore]:
    store = BlobStore(tmp_path / "built")
    weights = random.Random(0).randbytes(64 << 10)  # incompressible: the blob is 64 kB
    files = {"app/main.py": b"print('hi')\n", "app/data/weights.bin": weights}
    layer = _layer(store, tmp_path / "tree", files)
    extra = {"ledger": {}, "removals": []}
    return CacheEntry(KEY, "app", layer, extra), store


# -- the entry's own form (no registry)


def test_an_entry_reads_back_only_as_its_own_key(entry: tuple[CacheEntry, BlobStore]) -> None:
    e, _ = entry
    assert decode(e.manifest_bytes(), e.config_bytes(), KEY, "here") == e
    with pytest.raises(IntegrityError, match="another key"):
        decode(e.manifest_bytes(), e.config_bytes(), OTHER, "here")
    manifest = json.loads(e.manifest_bytes())
    assert manifest["config"]["mediaType"] == ENTRY_CONFIG
    assert manifest["layers"] == [e.layer.descriptor.to_json()]  # the image's own blob
    manifest["layers"][0]["digest"] = "sha256:" + "0" * 64
    with pytest.raises(IntegrityError, match="not the layer its config names"):
        decode(json.dumps(manifest).encode(), e.config_bytes(), KEY, "here")
    assert len(tag_for(KEY)) == 68 and tag_for(KEY).startswith("tsl-")


def test_a_cache_reference_is_a_repository() -> None:
    from torchslim.buildcache import cache_repository

    ref = cache_repository("127.0.0.1:5000/team/cache", "--cache-to")
    assert (ref.registry, ref.repository) == ("127.0.0.1:5000", "team/cache")
    with pytest.raises(ConfigError, match="--cache-from 127.0.0.1:5000/c:v1: name a repository"):
        cache_repository("127.0.0.1:5000/c:v1", "--cache-from")


# -- through a real registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (bash scripts/install.sh installs it)")
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def _export(reg: Registry, repo: str, entries: list[AnyEntry], store: BlobStore) -> list[str]:
    with RegistryClient(reg.host, tls_verify=False, use_auth_files=False) as cl:
        return export_entries(entries, Reference(reg.host, repo), store, client=cl).written


def _sources(
    tmp_path: Path, refs: list[Reference], warnings: list[str]
) -> tuple[CacheSources, BlobStore]:
    fresh = BlobStore(tmp_path / "fresh")
    return CacheSources(refs, fresh, tls_verify=False, warn=warnings.append), fresh


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fetch keeps each layer's SBOM metadata in the torchslim cache: a test's own."""
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "ts-cache"))
    return tmp_path / "ts-cache"


@pytest.mark.e2e
def test_an_exported_entry_is_fetched_with_its_files(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    e, store = entry
    assert _export(registry, "cache/ok", [e], store) == [KEY]
    assert _export(registry, "cache/ok", [e], store) == []  # already there: one HEAD
    warnings: list[str] = []
    sources, fresh = _sources(tmp_path, [Reference(registry.host, "cache/ok")], warnings)
    got = sources.fetch(KEY, "app")
    assert got == e and warnings == []
    assert fresh.verify(e.layer.digest)
    meta = layer_meta_store().get(e.layer.digest)  # read in the same pass as the diff id
    assert meta is not None and "app/main.py" in meta.others + list(meta.files)
    assert sources.stats.hits == 1 and sources.stats.bytes >= e.layer.descriptor.size
    assert sources.fetch(OTHER, "app") is None
    assert warnings == [] and sources.stats.misses == 1  # absent: a quiet miss


@pytest.mark.e2e
def test_an_entry_whose_layer_is_not_its_diff_id_is_not_used(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    """Whoever can push the tag decides what a key means; they cannot make a blob claim
    another content: the tar is hashed as it unpacks."""
    e, store = entry
    other = _layer(store, tmp_path / "other", {"app/main.py": b"import os; os.system('x')\n"})
    lying = CacheEntry(KEY, "app", Layer(other.descriptor, e.layer.diff_id, -1), e.extra)
    _export(registry, "cache/lying", [lying], store)
    warnings: list[str] = []
    sources, _ = _sources(tmp_path, [Reference(registry.host, "cache/lying")], warnings)
    assert sources.fetch(KEY, "app") is None
    assert len(warnings) == 1 and "not the diff id" in warnings[0] and "building" in warnings[0]
    assert layer_meta_store().get(other.digest) is None


@pytest.mark.e2e
def test_a_tampered_blob_in_the_registry_is_a_miss(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    _, store = entry
    # A layer of its own: the registry keeps one copy of a blob for every repository.
    layer = _layer(store, tmp_path / "own", {"app/model.bin": random.Random(1).randbytes(9000)})
    e = CacheEntry(KEY, "app", layer, {})
    _export(registry, "cache/tampered", [e], store)
    data = registry.blob_data(e.layer.digest)
    data.write_bytes(data.read_bytes()[:-8] + b"\0" * 8)
    warnings: list[str] = []
    sources, fresh = _sources(tmp_path, [Reference(registry.host, "cache/tampered")], warnings)
    assert sources.fetch(KEY, "app") is None
    assert len(warnings) == 1 and not fresh.has(e.layer.digest)


@pytest.mark.e2e
def test_a_registry_cut_off_mid_blob_is_one_warning_and_the_next_source_serves(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    e, store = entry
    _export(registry, "cache/cut", [e], store)
    # Every connection dies after 2 kB from the registry: the manifest arrives, the blob not.
    cutting = DroppingProxy(registry.host, 2048, times=100, downstream=True)
    dead = Reference("127.0.0.1:9", "nothing/here")  # discard port: refused
    try:
        warnings: list[str] = []
        refs = [dead, Reference(cutting.host, "cache/cut"), Reference(registry.host, "cache/cut")]
        sources, fresh = _sources(tmp_path, refs, warnings)
        got = sources.fetch(KEY, "app")
        assert got == e and fresh.verify(e.layer.digest)
        assert len(warnings) == 2, warnings
        assert warnings[0].startswith("--cache-from 127.0.0.1:9/nothing/here: ")
        assert "building without this cache" in warnings[0]
        assert cutting.host in warnings[1]
        assert sources.fetch(OTHER, "app") is None
        assert len(warnings) == 2  # a dead source is not asked again
    finally:
        cutting.close()


@pytest.mark.e2e
def test_a_registry_that_dies_mid_export_leaves_no_entry(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    e, store = entry
    cutting = DroppingProxy(registry.host, 4096, times=100)  # every upload dies
    try:
        with (
            RegistryClient(cutting.host, tls_verify=False, retries=1, backoff_s=0.01) as cl,
            pytest.raises(NetworkError),
        ):
            export_entries([e], Reference(cutting.host, "cache/half"), store, client=cl)
    finally:
        cutting.close()
    resp = httpx.head(f"http://{registry.host}/v2/cache/half/manifests/{tag_for(KEY)}")
    assert resp.status_code == 404  # the tag goes last: no entry without its blobs


@pytest.mark.e2e
def test_a_proof_record_is_reused_for_its_key_only(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    from torchslim.buildcache.entry import ProofEntry
    from torchslim.proof.result import Proof

    _, store = entry
    proof = Proof("proven", "chroot", entry="app:app", entry_check="imports", smoke="passed")
    good, bad = ProofEntry(KEY, proof.to_dict()), ProofEntry(OTHER, {"status": "proven"})
    assert _export(registry, "cache/proofs", [good, bad], store) == [KEY, OTHER]
    warnings: list[str] = []
    sources, _ = _sources(tmp_path, [Reference(registry.host, "cache/proofs")], warnings)
    got = sources.fetch_proof(KEY)
    assert got is not None and Proof.from_dict(got.proof) == proof and warnings == []
    assert sources.fetch_proof(OTHER) is None  # a record that is no proof is not used
    assert len(warnings) == 1 and "proof record" in warnings[0] and "malformed" in warnings[0]
    assert sources.fetch_proof("sha256:" + "ef" * 32) is None and len(warnings) == 1
    assert sources.stats.proofs == 1 and sources.stats.hits == 0


@pytest.mark.e2e
def test_what_proofs_learned_travels_and_a_grown_list_replaces_the_old(
    registry: Registry, entry: tuple[CacheEntry, BlobStore], tmp_path: Path
) -> None:
    from torchslim.build import learned
    from torchslim.build.layercache import LayerCache
    from torchslim.config import QuietSteps

    _, store = entry
    repo = Reference(registry.host, "cache/learned")
    first = LearnedEntry(KEY, "census", ["numpy", "torch"])
    assert _export(registry, "cache/learned", [first], store) == [KEY]
    assert _export(registry, "cache/learned", [first], store) == []  # the same: one HEAD
    # A later proof saw more under the same key: the entry is replaced, not skipped.
    grown = LearnedEntry(KEY, "census", ["fastapi", "numpy", "torch"])
    assert _export(registry, "cache/learned", [grown], store) == [KEY]
    warnings: list[str] = []
    sources, _ = _sources(tmp_path, [repo], warnings)
    got = sources.fetch_learned(KEY, "census")
    assert got == grown and warnings == [] and sources.stats.learned == 1
    # Under another kind the same key is not that list.
    assert sources.fetch_learned(KEY, "prefetch") is None
    assert len(warnings) == 1 and "another key, kind or format" in warnings[0]

    # A fresh runner's build reads it through the layer cache, keeps it locally and
    # sends it on to its own --cache-to.
    layers = LayerCache(
        BlobStore(tmp_path / "runner"), compression="gzip", uid=1000, steps=QuietSteps(),
        root=tmp_path / "runner-cache", sources=_sources(tmp_path, [repo], warnings)[0],
    )  # fmt: skip
    strings = lambda data: all(isinstance(x, str) for x in data)  # noqa: E731
    assert learned.read(layers, "census", KEY, strings) == grown.data
    assert learned.path("census", KEY).is_file()  # kept: the next build asks no registry
    assert layers.used[grown.tag] == grown
    assert learned.read(layers, "census", OTHER, strings) is None  # absent: a quiet miss
    assert len(warnings) == 1


@pytest.mark.e2e
def test_a_cache_without_credentials_is_one_warning(
    entry: tuple[CacheEntry, BlobStore],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from support.registry import PASSWORD, USER

    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (bash scripts/install.sh installs it)")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-logins"))  # never the host's
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    reg = start_registry(tmp_path_factory.mktemp("auth-registry"), user=USER, password=PASSWORD)
    try:
        warnings: list[str] = []
        sources, _ = _sources(tmp_path, [Reference(reg.host, "cache/private")], warnings)
        assert sources.fetch(KEY, "app") is None
        assert sources.fetch(OTHER, "app") is None
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"--cache-from {reg.host}/cache/private: ")
        assert "building without this cache" in warnings[0]
    finally:
        reg.stop()
