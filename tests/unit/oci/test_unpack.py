"""Unpacking an image for the proof: hostile layers cannot change anything outside the root."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from support.images import Entry, Spec, file, layer, write_oci

from torchslim.oci.layout import read_oci_layout
from torchslim.oci.unpack import unpack_image


def _unpack(tmp_path: Path, *entries: list[Entry]) -> tuple[Path, set[str]]:
    img = write_oci(tmp_path / "img", Spec([layer(list(e)) for e in entries]))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "sibling").write_text("must stay")
    inside = str(scratch / "root")

    def listing() -> set[str]:
        return {str(p) for p in tmp_path.rglob("*") if not str(p).startswith(inside)}

    before = listing()
    root = unpack_image(read_oci_layout(img), scratch / "root")
    after = listing()
    assert after == before, (sorted(after - before), sorted(before - after))
    return root, after


def test_a_directory_replaced_by_a_symlink_is_not_chmodded_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    _unpack(
        tmp_path,
        [Entry("x", kind="dir", mode=0o777), Entry("x/y", kind="dir", mode=0o777)],
        [Entry("x", kind="symlink", linkname=str(victim))],
    )
    assert victim.stat().st_mode & 0o777 == 0o700


def test_whiteouts_of_dot_and_dotdot_remove_nothing(tmp_path: Path) -> None:
    root, _ = _unpack(
        tmp_path,
        [file("a/f", 3), file("g", 3)],
        [Entry(".wh.."), Entry(".wh..."), Entry("a/.wh.."), Entry("a/.wh..."), Entry(".wh.g")],
    )
    assert (root / "a/f").is_file() and not (root / "g").exists()
    assert (tmp_path / "scratch/sibling").read_text() == "must stay"


def test_names_and_links_that_leave_the_root_write_inside_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root, _ = _unpack(
        tmp_path,
        [
            file("../../escape", 3),
            Entry("d", kind="symlink", linkname=str(outside)),
            file("d/evil", 3),
            Entry("e", kind="symlink", linkname="../../../../outside"),
            file("e/evil2", 3),
            Entry("h", kind="hardlink", linkname="../../outside/x"),
        ],
    )
    assert list(outside.iterdir()) == []
    assert (root / "d").is_symlink() and not (root / "escape").exists()


def test_a_directory_replaced_by_a_link_in_the_same_layer_is_not_written_through(
    tmp_path: Path,
) -> None:
    """The unpacker remembers where each directory went; a member that replaces one (here
    by a link out of the root) must make it forget, or ``x/b`` would land outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root, _ = _unpack(
        tmp_path,
        [
            Entry("x", kind="dir"),
            file("x/a", 3),
            Entry("x", kind="symlink", linkname=str(outside)),
            file("x/b", 3),
            Entry("y", kind="dir"),
            file("y/a", 3),
            Entry("y", kind="symlink", linkname="../../outside"),
            file("y/b", 3),
        ],
    )
    assert list(outside.iterdir()) == []
    assert (root / "x").is_symlink() and (root / "y").is_symlink()


def test_a_large_member_is_streamed_not_held(tmp_path: Path) -> None:
    size = 24 << 20
    img = write_oci(tmp_path / "img", Spec([layer([file("big", b"\0" * size)], "zstd")]))
    image = read_oci_layout(img)
    tracemalloc.start()
    try:
        root = unpack_image(image, tmp_path / "root")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(root / "big") == size
    assert peak < size // 2, f"peak {peak >> 20} MiB"


def _listing(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_text()
    return out


def test_merged_layer_trees_equal_the_unpacked_image(tmp_path: Path) -> None:
    """Per-layer trees (whiteout markers kept) merged by hard links give the same root as
    streaming the layers: whiteouts, opaque dirs, a file replacing a dir and the reverse."""
    from torchslim.oci.unpack import merge_trees, unpack_layer

    layers = [
        [
            file("etc/passwd", b"root\n"),
            file("opt/a/one", b"1"),
            file("opt/a/two", b"2"),
            file("srv/x/inner", b"i"),
            file("keep", b"k"),
            Entry("bin", kind="symlink", linkname="usr/bin"),
            file("usr/bin/tool", b"t"),
        ],
        [
            Entry("opt/a/.wh..wh..opq"),
            file("opt/a/three", b"3"),
            Entry(".wh.keep"),
            file("srv/x", b"now a file"),
            file("bin/added", b"through the link"),
        ],
        [Entry("srv/.wh.x"), file("srv/x/again", b"a dir again")],
    ]
    img = read_oci_layout(write_oci(tmp_path / "img", Spec([layer(e) for e in layers])))
    streamed = unpack_image(img, tmp_path / "streamed")
    trees = [unpack_layer(img, lay, tmp_path / f"tree{i}") for i, lay in enumerate(img.layers())]
    assert (trees[1] / "opt/a/.wh..wh..opq").is_file()  # markers stay in a layer's tree
    merged = merge_trees(trees, tmp_path / "merged")
    assert _listing(merged) == _listing(streamed)
    assert _listing(merged)["opt/a/three"] == "3" and "opt/a/one" not in _listing(merged)
    assert (
        "keep" not in _listing(merged) and _listing(merged)["usr/bin/added"] == "through the link"
    )
    assert os.stat(merged / "etc/passwd").st_ino == os.stat(trees[0] / "etc/passwd").st_ino
