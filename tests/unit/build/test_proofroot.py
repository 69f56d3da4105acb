"""The proof's root: a kept copy reused across proofs equals a fresh merge every time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from support.images import ImageMaker

from torchslim.build.proofroot import proof_root
from torchslim.oci.image import Image


def _tree(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


def _listing(root: Path) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            text = p.read_text() if p.is_file() else ""
            out[rel] = (p.lstat().st_mode, text)
    return out


@pytest.fixture
def lower(tmp_path: Path) -> list[Path]:
    base = _tree(tmp_path / "base", {"etc/os-release": "debian", "usr/bin/python3": "py"})
    (base / "tmp").mkdir()
    deps = _tree(tmp_path / "deps", {"usr/lib/site/torch.py": "torch"})
    return [base, deps]


Build = Callable[[list[Path]], tuple[Image, list[Path]]]


@pytest.fixture
def build(
    tmp_path: Path, lower: list[Path], make_image: ImageMaker, monkeypatch: pytest.MonkeyPatch
) -> Build:
    monkeypatch.setenv("TORCHSLIM_CACHE", str(tmp_path / "cache"))

    def image_of(top: list[Path]) -> tuple[Image, list[Path]]:
        trees = lower + top
        return make_image(trees), trees

    return image_of


def _fresh(trees: list[Path], dest: Path) -> dict[str, tuple[int, str]]:
    from torchslim.oci.unpack import merge_trees

    root = merge_trees(trees, dest)
    (root / "app").mkdir(exist_ok=True)
    (root / "etc" / "hosts").touch()
    return _listing(root)


def test_each_proof_sees_exactly_its_image_and_the_copy_is_reused(
    tmp_path: Path, build: Build
) -> None:
    model = _tree(tmp_path / "model", {"app/model/w.pt": "weights"})
    for i, files in enumerate(
        [
            {"app/service/main.py": "v1", "app/service/old.py": "gone next"},
            {"app/service/main.py": "v2"},
            {"app/service/main.py": "v3", "app/extra/new.py": "new"},
        ]
    ):
        app = _tree(tmp_path / f"app{i}", files)
        image, trees = build([app, model])
        scratch = tmp_path / f"scratch{i}"
        scratch.mkdir()
        with proof_root(image, trees, scratch, workdir="/app") as root:
            assert root.name.endswith(".work")  # the kept copy, not a fresh one
            assert _listing(root) == _fresh(trees, tmp_path / f"fresh{i}")
            # The lower layers' files are links to the kept root, not copies.
            kept = root.with_name(root.name.removesuffix(".work"))
            assert (root / "usr/bin/python3").stat().st_ino == (
                kept / "usr/bin/python3"
            ).stat().st_ino
        assert not (kept / "app").exists()  # the kept root never gets the top layers


def test_a_top_layer_that_replaces_a_lower_file_gets_a_fresh_copy(
    tmp_path: Path, build: Build
) -> None:
    app = _tree(tmp_path / "app", {"app/main.py": "x", "etc/os-release": "patched"})
    model = _tree(tmp_path / "model", {"app/model/w.pt": "w"})
    image, trees = build([app, model])
    with proof_root(image, trees, tmp_path, workdir="/app") as root:
        assert root == tmp_path / "root"
        assert (root / "etc/os-release").read_text() == "patched"
        kept = next(p for p in (tmp_path / "cache" / "proof-roots").iterdir() if p.is_dir())
        assert (kept / "etc/os-release").read_text() == "debian"
        assert _listing(root) == _fresh(trees, tmp_path / "fresh")


def test_a_copy_another_build_holds_is_not_shared(tmp_path: Path, build: Build) -> None:
    app = _tree(tmp_path / "app", {"app/main.py": "x"})
    model = _tree(tmp_path / "model", {"app/model/w.pt": "w"})
    image, trees = build([app, model])
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    with proof_root(image, trees, tmp_path / "s1", workdir="/app") as first:
        lock = first.with_name(first.name.removesuffix(".work") + ".lock")
        with open(lock) as held, pytest.raises(OSError):
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with proof_root(image, trees, tmp_path / "s2", workdir="/app") as second:
            assert second == tmp_path / "s2" / "root"
            assert _listing(second) == _listing(first)


def test_a_damaged_state_is_never_followed_out_of_the_copy(tmp_path: Path, build: Build) -> None:
    app = _tree(tmp_path / "app", {"app/main.py": "x"})
    model = _tree(tmp_path / "model", {"app/model/w.pt": "w"})
    image, trees = build([app, model])
    (tmp_path / "s").mkdir()
    with proof_root(image, trees, tmp_path / "s", workdir="/app") as root:
        state = root.with_name(root.name + ".json")
    victim = _tree(tmp_path / "victim", {"keep.txt": "mine"})
    state.write_text(
        '{"added": ["../../../victim", "%s"], "entered": []}' % victim  # noqa: UP031
    )
    with proof_root(image, trees, tmp_path / "s", workdir="/app") as again:
        assert _listing(again) == _fresh(trees, tmp_path / "fresh")
    assert (victim / "keep.txt").read_text() == "mine"
