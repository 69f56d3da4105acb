"""Layer cache: a finished layer found by the digest of its inputs, and the one get-or-build.

The layer bytes live in the BlobStore; this cache maps an input key to the layer's
descriptor plus what the build reports about it (its slimming ledger), so a warm
build skips staging, slimming and compressing entirely. Editing one app file
changes one key and rebuilds one small layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torchslim.atomic import write_atomic
from torchslim.build.layerparts import split_tree
from torchslim.build.report import LayerReport
from torchslim.buildcache.entry import AnyEntry, CacheEntry, LearnedEntry, ProofEntry
from torchslim.buildcache.remote import CacheSources
from torchslim.cache import BlobStore, cache_root
from torchslim.config import Compression, Steps
from torchslim.digests import split_digest
from torchslim.errors import IntegrityError
from torchslim.oci.estargz import FORMAT as ESTARGZ_FORMAT
from torchslim.oci.image import Image
from torchslim.oci.layer import Layer, OwnerFn, compression_level, write_layer_from_dir
from torchslim.oci.unpack import unpack_layer
from torchslim.proof.result import Proof

# Bump when what a layer contains for the same inputs changes.
BUILD_FORMAT = 6  # 3: the Debian base has /usr/bin/python; 4: entries keep every removal;
# 5: gzip and zstd layers compressed on threads (the bytes differ from 4's single stream);
# 6: python, app and model layers cut into parts at layerparts' limits (bump if they change)

Fill = Callable[[Path], dict[str, Any]]


def part_name(name: str, number: int) -> str:
    """The name of part ``number`` (2, 3, …) of layer ``name``."""
    return f"{name}-{number}"


def part_key(key: str, number: int) -> str:
    """The cache key of part ``number`` of the layer of ``key``."""
    return input_key("part", key, number)


def input_key(*parts: Any) -> str:
    """A stable digest of JSON-serialisable inputs."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def staging(name: str) -> Iterator[Path]:
    """A scratch directory in the cache's file system, removed afterwards."""
    base = cache_root() / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class LayerCache:
    """Layers by input key; ``get_or_build`` is the only way a build makes a layer."""

    def __init__(
        self,
        store: BlobStore,
        *,
        compression: Compression,
        level: int | None = None,
        uid: int,
        steps: Steps,
        root: Path | None = None,
        sources: CacheSources | None = None,
    ) -> None:
        self.store = store
        # --cache-from: asked for a key the local cache lacks (buildcache.remote).
        self.sources = sources
        # Every layer this build used, the record of its proof and what its proofs learned,
        # hit or made, by tag: what --cache-to exports.
        self.used: dict[str, AnyEntry] = {}
        self.compression = compression
        self.level = compression_level(compression, level)
        # eStargz: image paths its layers put first, to prefetch (``Assembly`` sets it
        # from the census once the base is made: the base layers never take it).
        self.prefetch: tuple[str, ...] = ()
        self.uid = uid
        self.steps = steps
        self.root = (root or cache_root()) / "layers"
        # Each layer's files as a plain tree, for the proof (oci.unpack.merge_trees): the
        # tree a layer was written from is kept, so a warm proof unpacks nothing.
        self.trees = (root or cache_root()) / "trees"

    def key(self, kind: str, mtime: int, *parts: Any) -> str:
        """The input key of a layer: what it is made of plus everything that shapes its bytes."""
        shape: list[Any] = [BUILD_FORMAT, self.compression, mtime, self.uid]
        if self.level != compression_level(self.compression, None):  # default: keys as before
            shape.append(["level", self.level])
        if self.compression == "estargz":  # the writer's format, and its members' order
            shape.append([ESTARGZ_FORMAT, sorted(self.prefetch)])
        return input_key(kind, shape, *parts)

    def _path(self, key: str) -> Path:
        return self.root / (key.removeprefix("sha256:") + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry for ``key`` if it is well formed and its blob is in the store with the
        right bytes. A corrupt entry or blob is evicted (the blob with a warning), so the
        caller builds the layer again."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_text())
            layer = Layer.from_dict(entry["layer"])
            if not isinstance(entry.get("extra", {}), dict):
                raise ValueError("extra is not an object")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RecursionError, IntegrityError):
            path.unlink(missing_ok=True)
            return None
        if not self.store.verify(layer.digest):  # hashed as it is read; evicted on mismatch
            path.unlink(missing_ok=True)
            return None
        return dict(entry)

    def hit(self, name: str, key: str) -> tuple[Layer, LayerReport, dict[str, Any]] | None:
        """The cached layer of ``key`` with its report (from the local cache, else from a
        ``--cache-from`` source, then kept locally), or None."""
        entry = self.get(key)
        if entry is None and self.sources is not None:
            fetched = self.sources.fetch(key, name)
            if fetched is not None:
                entry = self._keep_fetched(fetched)
        if entry is None:
            return None
        layer = Layer.from_dict(entry["layer"])
        extra: dict[str, Any] = entry.get("extra", {})
        self._use(CacheEntry(key, name, layer, extra))
        return layer, LayerReport.of(name, layer, True, 0.0, extra), extra

    def hit_parts(
        self, name: str, key: str
    ) -> list[tuple[Layer, LayerReport, dict[str, Any]]] | None:
        """Every part of the layer of ``key`` (``write_parts``), or None if one is missing."""
        first = self.hit(name, key)
        if first is None:
            return None
        count = first[2].get("parts", 1)
        out = [first]
        for number in range(2, count + 1 if isinstance(count, int) else 2):
            part = self.hit(part_name(name, number), part_key(key, number))
            if part is None:
                return None
            out.append(part)
        return out

    def _use(self, entry: AnyEntry) -> None:
        self.used[entry.tag] = entry

    def exported(self, layer_digests: Collection[str]) -> dict[str, AnyEntry]:
        """What --cache-to writes for an image of these layers: its layers (not those of
        an earlier try a proof replaced: what the proofs learned brings the next build
        straight to this image), every proof record and what the proofs learned."""
        return {
            tag: e
            for tag, e in self.used.items()
            if not isinstance(e, CacheEntry) or e.layer.digest in layer_digests
        }

    def keep_learned(self, key: str, kind: str, data: list[Any]) -> None:
        """What a proof learned (``build.learned``) goes with the layers to --cache-to."""
        self._use(LearnedEntry(key, kind, data))

    def shared_learned(self, key: str, kind: str) -> list[Any] | None:
        """What earlier proofs learned under ``key``, from a --cache-from source, if any."""
        if self.sources is None:
            return None
        entry = self.sources.fetch_learned(key, kind)
        return None if entry is None else entry.data

    def keep_proof(self, key: str, proof: Proof) -> None:
        """The proof (``proofcache.proof_key``'s hex ``key``) goes with the layers to
        --cache-to."""
        self._use(ProofEntry("sha256:" + key, proof.to_dict()))

    def shared_proof(self, key: str) -> Proof | None:
        """The record of a proof with this key from a --cache-from source, if any."""
        if self.sources is None:
            return None
        entry = self.sources.fetch_proof("sha256:" + key)
        if entry is None:
            return None
        self._use(entry)
        return Proof.from_dict(entry.proof)

    def _keep_fetched(self, entry: CacheEntry) -> dict[str, Any]:
        """A fetched entry as a local one (its blob is in the store, checked; its files are
        unpacked by ``tree`` if a proof needs them)."""
        self.root.mkdir(parents=True, exist_ok=True)
        local = {"layer": entry.layer.to_dict(), "extra": entry.extra}
        write_atomic(self._path(entry.key), json.dumps(local))
        return local

    def write(
        self,
        name: str,
        key: str,
        root: Path,
        *,
        mtime: int,
        extra: dict[str, Any] | None = None,
        owner: OwnerFn | None = None,
    ) -> tuple[Layer, LayerReport]:
        """Write the tree at ``root`` as layer ``name`` and remember it under ``key``."""
        started = time.monotonic()
        self.steps.step(f"Writing layer {name}")
        written = [0]

        def progress(n: int) -> None:
            written[0] += n
            self.steps.progress(f"layer {name}", written[0], 0)

        layer = write_layer_from_dir(
            root,
            self.store,
            compression=self.compression,
            level=self.level,
            mtime=mtime,
            owner=owner,
            progress=progress,
            prefetch=self.prefetch,
        )
        extra = extra or {}
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self._path(key), json.dumps({"layer": layer.to_dict(), "extra": extra}))
        self._keep_tree(layer, root)
        self._use(CacheEntry(key, name, layer, extra))
        seconds = time.monotonic() - started
        return layer, LayerReport.of(name, layer, False, seconds, extra)

    def write_parts(
        self,
        name: str,
        key: str,
        root: Path,
        *,
        mtime: int,
        extra: dict[str, Any] | None = None,
        owner: OwnerFn | None = None,
    ) -> list[tuple[Layer, LayerReport]]:
        """``write``, cut into parts when the tree is over ``layerparts``' limits: the first
        keeps ``name``, ``key`` and ``extra`` (with the number of parts), the others are
        ``name-2``, … under keys derived from ``key``."""
        parts = split_tree(root, root.parent / f"{root.name}.parts")
        out = []
        for number, part in enumerate(parts, start=1):
            if number == 1:
                part_extra = {**(extra or {}), "parts": len(parts)} if len(parts) > 1 else extra
                out.append(self.write(name, key, part, mtime=mtime, extra=part_extra, owner=owner))
            else:
                out.append(
                    self.write(
                        part_name(name, number),
                        part_key(key, number),
                        part,
                        mtime=mtime,
                        extra={"part_of": name},
                        owner=owner,
                    )
                )
        return out

    def _tree_path(self, layer: Layer) -> Path:
        _, hexpart = split_digest(layer.diff_id, "layer diff_id")
        return self.trees / hexpart

    def _keep_tree(self, layer: Layer, root: Path) -> None:
        """Move the staging tree a layer was written from into the trees (it is done)."""
        dest = self._tree_path(layer)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another build kept the same tree first
            os.replace(root, dest)

    def tree(self, image: Image, layer: Layer) -> Path:
        """``layer``'s files as a tree: kept from its build, else unpacked once from its blob."""
        dest = self._tree_path(layer)
        if dest.is_dir():
            return dest
        with staging("tree") as scratch:
            unpack_layer(image, layer, scratch / "tree")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.replace(scratch / "tree", dest)
        return dest

    def get_or_build_parts(
        self,
        name: str,
        key: str,
        fill: Fill,
        *,
        mtime: int,
        owner: OwnerFn | None = None,
    ) -> list[tuple[Layer, LayerReport]]:
        """``get_or_build`` for a layer that may be cut into parts (``write_parts``)."""
        hit = self.hit_parts(name, key)
        if hit is not None:
            return [(layer, report) for layer, report, _ in hit]
        started = time.monotonic()
        with staging(name) as root:
            tree = root / "tree"
            tree.mkdir()
            extra = fill(tree)
            made = self.write_parts(name, key, tree, mtime=mtime, extra=extra, owner=owner)
        made[0][1].seconds = time.monotonic() - started
        return made

    def get_or_build(
        self,
        name: str,
        key: str,
        fill: Fill,
        *,
        mtime: int,
        owner: OwnerFn | None = None,
    ) -> tuple[Layer, LayerReport, dict[str, Any]]:
        """The layer of ``key`` from the cache, else ``fill`` a staging tree and write it.

        ``fill`` returns what the cache keeps beside the layer (reported again on hits).
        """
        hit = self.hit(name, key)
        if hit is not None:
            return hit
        started = time.monotonic()
        with staging(name) as root:
            extra = fill(root)
            layer, report = self.write(name, key, root, mtime=mtime, extra=extra, owner=owner)
        report.seconds = time.monotonic() - started
        return layer, report, extra
