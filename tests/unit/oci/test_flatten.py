"""Merged view: whiteouts, opaque dirs, links, per-path history, wasted bytes."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

from support.images import Blob, Entry, file, layer

from torchslim.analyze import Analysis

Run = Callable[..., Analysis]


def test_wasted_counts_only_hidden_copies(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer([file("app/model.bin", 4000), file("app/keep.bin", 1000), file("tmp/x", 700)]),
        layer([file("app/model.bin", 2500), Entry("tmp/.wh.x")]),
        layer([file("app/model.bin", 100)], "zstd"),
    )
    # 4000 (layer 0) and 2500 (layer 1) are hidden; 700 deleted; the 100-byte copy stays.
    assert a.wasted_bytes == 4000 + 2500 + 700
    assert a.files_bytes == 1000 + 100
    assert [lay.wasted_bytes for lay in a.layers] == [4700, 2500, 0]
    assert [lay.added_bytes for lay in a.layers] == [1000, 0, 100]
    assert a.history("app/model.bin") == [
        {"layer": 0, "action": "added"},
        {"layer": 1, "action": "overwritten"},
        {"layer": 2, "action": "overwritten"},
    ]
    assert a.history("tmp/x")[-1] == {"layer": 1, "action": "deleted"}
    f = a.finding("wasted-bytes")
    assert f is not None and f.bytes == 7200 and f.paths[0] == "app/model.bin"


def test_opaque_dir_hides_lower_layers_only(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer([file("opt/lib/a", 300), file("opt/lib/sub/b", 200), file("opt/other", 50)]),
        layer([file("opt/lib/new", 10), Entry("opt/lib/.wh..wh..opq")]),
    )
    assert set(p for p, n in a.view.nodes.items() if n.kind == "file") == {
        "opt/lib/new",
        "opt/other",
    }
    assert a.wasted_bytes == 500


def test_whiteout_of_directory_removes_subtree(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer([Entry("root/.cache", kind="dir"), file("root/.cache/pip/w.whl", 900)]),
        layer([Entry("root/.wh..cache")]),
    )
    assert a.files_bytes == 0 and a.wasted_bytes == 900
    assert a.category("cache.pip") is None


def test_hardlinks_and_symlinks(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer(
            [
                file("usr/lib/libfoo.so.1", 5000),
                Entry("usr/lib/libfoo.so", kind="symlink", linkname="libfoo.so.1"),
                Entry("usr/lib/libfoo-copy", kind="hardlink", linkname="usr/lib/libfoo.so.1"),
                Entry("lib", kind="symlink", linkname="usr/lib"),
            ]
        )
    )
    assert a.files_bytes == 5000  # the hard link shares the bytes, counted once
    node = a.view.get("lib/libfoo-copy")
    assert node is not None and node.path == "usr/lib/libfoo.so.1"
    assert a.view.resolve("lib/libfoo.so") == "usr/lib/libfoo.so.1"


def test_file_replaced_by_directory_counts_as_waste(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer([file("srv/data", 800)]),
        layer([Entry("srv/data", kind="dir"), file("srv/data/x", 5)]),
    )
    assert a.wasted_bytes == 800 and a.files_bytes == 5


def _device_layer(mode: int, kind: bytes = tarfile.CHRTYPE) -> Blob:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("dev/mem")
        ti.type, ti.mode, ti.devmajor, ti.devminor = kind, mode, 1, 1
        tar.addfile(ti)
    return layer(buf.getvalue())


def test_world_writable_device_nodes_are_a_finding(analyze_layers: Run) -> None:
    f = analyze_layers(_device_layer(0o666)).finding("world-writable-devices")
    assert f is not None and f.severity == "high"
    assert f.paths == ["dev/mem (char device, mode 0666: any user can open it)"]
    blk = analyze_layers(_device_layer(0o602, tarfile.BLKTYPE)).finding("world-writable-devices")
    assert blk is not None and "block device, mode 0602" in blk.paths[0]
    assert analyze_layers(_device_layer(0o660)).finding("world-writable-devices") is None


def test_malformed_whiteouts_are_reported_and_not_applied(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer([file("a/f", 10), file("b/g", 10)]),
        layer([Entry("a/.wh.."), Entry(".wh."), Entry("b/.wh..wh.plnk"), Entry("b/.wh...")]),
    )
    f = a.finding("malformed-whiteouts")
    assert f is not None and len(f.paths) == 4
    assert {p.split(" (")[0] for p in f.paths} == {"a/.wh..", ".wh.", "b/.wh..wh.plnk", "b/.wh..."}
    assert {"a/f", "b/g"} <= {p for p, n in a.view.nodes.items() if n.kind == "file"}
    good = analyze_layers(layer([file("a/f", 1)]), layer([Entry("a/.wh.f")]))
    assert good.finding("malformed-whiteouts") is None


def test_whiteout_of_a_deep_tree_needs_no_recursion(analyze_layers: Run) -> None:
    deep = "/".join(["d"] * 3000)
    a = analyze_layers(layer([file(deep + "/f", 5)]), layer([Entry(".wh.d")]))
    assert not any(p.startswith("d") for p in a.view.nodes)
    assert a.wasted_bytes == 5
