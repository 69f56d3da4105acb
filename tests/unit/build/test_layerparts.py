"""Layers cut into parts: within the limits, reproducible, each part whole on its own,
and together the same files as the one layer would have held."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from torchslim.build import layerparts
from torchslim.build.layercache import LayerCache
from torchslim.cache import BlobStore
from torchslim.config import QuietSteps
from torchslim.oci.layer import write_layer_from_dir


def make(root: Path, files: int = 25) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg").chmod(0o750)
    for i in range(files):
        where = root / "pkg" / ("sub" if i % 2 else "") / f"f{i:02}.py"
        where.write_text(f"x = {i}\n")
    (root / "big.so").write_bytes(b"\1" * 5000)
    os.symlink("big.so", root / "link.so")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        st = p.lstat()
        data = os.readlink(p).encode() if p.is_symlink() else p.read_bytes() if p.is_file() else b""
        out[rel] = (st.st_mode, data)
    return out


def members(store: BlobStore, root: Path) -> list[tarfile.TarInfo]:
    layer = write_layer_from_dir(root, store, compression="none")
    with tarfile.open(fileobj=io.BytesIO(store.read_bytes(layer.digest))) as tar:
        return tar.getmembers()


def test_a_tree_within_the_limits_is_left_as_it_is(tmp_path: Path) -> None:
    root = make(tmp_path / "t")
    before = snapshot(root)
    assert layerparts.split_tree(root, tmp_path / "parts") == [root]
    assert snapshot(root) == before and not (tmp_path / "parts").exists()


def test_parts_hold_at_most_the_limit_and_together_every_file(tmp_path: Path) -> None:
    root = make(tmp_path / "t")
    before = snapshot(root)
    parts = layerparts.split_tree(root, tmp_path / "parts", max_entries=10, max_bytes=4000)
    assert len(parts) >= 3
    store = BlobStore(tmp_path / "store")
    merged: dict[str, tuple[int, bytes]] = {}
    for part in parts:
        found = members(store, part)
        own = [m for m in found if not m.isdir()]
        assert len(found) <= 10 + 2  # its entries, plus the parents it needs
        assert sum(m.size for m in own) <= 4000 or len(own) == 1  # big.so is alone
        merged.update({k: v for k, v in snapshot(part).items() if k not in merged or v[1]})
    assert merged == before  # every file, link and directory, with its mode
    assert snapshot(parts[1])["pkg"][0] & 0o777 == 0o750  # parents keep the source's mode


def test_the_cut_depends_only_on_the_tree_and_one_edit_changes_one_part(tmp_path: Path) -> None:
    digests = []
    for n, edit in enumerate([False, False, True]):
        root = make(tmp_path / f"t{n}")
        if edit:
            (root / "pkg" / "sub" / "f23.py").write_text("x = 'edited'\n")
        parts = layerparts.split_tree(root, tmp_path / f"p{n}", max_entries=10, max_bytes=10**9)
        store = BlobStore(tmp_path / "store")
        digests.append([write_layer_from_dir(p, store, compression="gzip").digest for p in parts])
    assert digests[0] == digests[1]
    changed = [a != b for a, b in zip(digests[0], digests[2], strict=True)]
    assert sum(changed) == 1


def test_the_layer_cache_writes_and_finds_every_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layerparts, "MAX_ENTRIES", 10)
    store = BlobStore(tmp_path / "store")
    cache = LayerCache(store, compression="gzip", uid=1000, steps=QuietSteps(), root=tmp_path / "c")
    key = cache.key("test", 0, "parts")

    def fill(root: Path) -> dict[str, object]:
        make(root)
        return {"ledger": {}}

    made = cache.get_or_build_parts("app", key, fill, mtime=0)
    names = [report.name for _, report in made]
    assert names[:3] == ["app", "app-2", "app-3"]
    again = cache.hit_parts("app", key)
    assert again is not None
    assert [layer.digest for layer, _, _ in again] == [layer.digest for layer, _ in made]
    assert all(report.cached for _, report, _ in again)
    # A part that went missing means the layer is built again, not served short.
    (cache.root / (layerparts_key(cache, key, 2) + ".json")).unlink()
    assert cache.hit_parts("app", key) is None


def layerparts_key(cache: LayerCache, key: str, number: int) -> str:
    from torchslim.build.layercache import part_key

    return part_key(key, number).removeprefix("sha256:")
