"""One get-or-build: a layer is made once per input key and found again by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torchslim.build.layercache import LayerCache
from torchslim.cache import BlobStore
from torchslim.config import QuietSteps


def test_get_or_build_fills_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "c")
    cache = LayerCache(store, compression="gzip", uid=1000, steps=QuietSteps(), root=tmp_path)
    fills: list[Path] = []

    def fill(root: Path) -> dict[str, Any]:
        fills.append(root)
        (root / "etc").mkdir()
        (root / "etc" / "hello").write_text("hi\n")
        return {"ledger": {"r": 1}}

    key = cache.key("files", 0, ["etc/hello"])
    layer, report, extra = cache.get_or_build("app", key, fill, mtime=0)
    assert len(fills) == 1 and not report.cached and extra == {"ledger": {"r": 1}}
    again, report2, extra2 = cache.get_or_build("app", key, fill, mtime=0)
    assert len(fills) == 1 and report2.cached and again == layer and extra2 == extra
    assert report2.ledger == {"r": 1}
    assert not fills[0].exists()  # staging is cleaned up


def test_key_covers_what_shapes_the_bytes(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "c")
    gz = LayerCache(store, compression="gzip", uid=1000, steps=QuietSteps(), root=tmp_path)
    zs = LayerCache(store, compression="zstd", uid=1000, steps=QuietSteps(), root=tmp_path)
    other_uid = LayerCache(store, compression="gzip", uid=1001, steps=QuietSteps(), root=tmp_path)
    keys = {
        gz.key("files", 0, "x"),
        gz.key("files", 1, "x"),
        gz.key("files", 0, "y"),
        zs.key("files", 0, "x"),
        other_uid.key("files", 0, "x"),
    }
    assert len(keys) == 5
    # eStargz: the files put first shape the bytes; other compressions ignore the list.
    lazy = LayerCache(store, compression="estargz", uid=1000, steps=QuietSteps(), root=tmp_path)
    before = lazy.key("files", 0, "x")
    lazy.prefetch = ("/app/main.py",)
    assert lazy.key("files", 0, "x") != before
    gz.prefetch = ("/app/main.py",)
    assert gz.key("files", 0, "x") in keys


def test_key_covers_the_level_and_keeps_the_default_keys(tmp_path: Path) -> None:
    def key(compression: str, level: int | None) -> str:
        cache = LayerCache(
            BlobStore(tmp_path / "c"),
            compression=compression,  # type: ignore[arg-type]
            level=level,
            uid=1000,
            steps=QuietSteps(),
            root=tmp_path,
        )
        return cache.key("files", 0, "x")

    # The format's own default level keeps the key a build without the option had.
    assert key("zstd:chunked", 3) == key("zstd:chunked", None)
    assert key("gzip", 6) == key("gzip", None)
    assert key("zstd:chunked", 19) != key("zstd:chunked", None)
    assert key("zstd:chunked", 19) != key("zstd:chunked", 9)
    assert key("gzip", 9) != key("gzip", None)


def test_a_missing_blob_is_a_miss(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "c")
    cache = LayerCache(store, compression="gzip", uid=1000, steps=QuietSteps(), root=tmp_path)
    key = cache.key("files", 0)

    def fill(root: Path) -> dict[str, Any]:
        (root / "f").write_text("x")
        return {}

    layer, _, _ = cache.get_or_build("app", key, fill, mtime=0)
    store.path(layer.digest).unlink()
    assert cache.get(key) is None


def test_a_corrupt_layer_blob_is_evicted_and_rebuilt(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = BlobStore(tmp_path / "c", warn=warnings.append)
    cache = LayerCache(store, compression="gzip", uid=1000, steps=QuietSteps(), root=tmp_path)
    key = cache.key("files", 0)
    fills: list[int] = []

    def fill(root: Path) -> dict[str, Any]:
        fills.append(1)
        (root / "f").write_text("x" * 5000)
        return {}

    layer, _, _ = cache.get_or_build("app", key, fill, mtime=0)
    blob = store.path(layer.digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    again, report, _ = cache.get_or_build("app", key, fill, mtime=0)
    assert len(fills) == 2 and not report.cached  # rebuilt, not trusted by name
    assert again == layer and store.verify(layer.digest)  # the same bytes again
    assert len(warnings) == 1 and layer.digest in warnings[0]


def test_a_corrupt_cache_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "c")
    cache = LayerCache(store, compression="gzip", uid=1000, steps=QuietSteps(), root=tmp_path)
    key = cache.key("files", 0)
    entry = cache.root / (key.removeprefix("sha256:") + ".json")
    entry.parent.mkdir(parents=True)
    for text in ("{", '{"layer": 1}', '{"layer": {"descriptor": {"digest": "sha256:../x"}}}'):
        entry.write_text(text)
        assert cache.get(key) is None and not entry.exists()
