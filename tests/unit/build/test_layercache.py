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
