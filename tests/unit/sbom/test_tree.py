"""The metadata tree: a rootfs directory and an image's layers give the same view."""

from __future__ import annotations

from pathlib import Path

from support.sbom import SITE, make_rootfs

from torchslim.cache import BlobStore
from torchslim.oci.empty import empty_image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.mutate import append_layers
from torchslim.sbom.tree import MetaTree, tree_from_dir, tree_from_image, wanted


def test_wanted_selects_package_metadata_only() -> None:
    assert wanted("etc/os-release")
    assert wanted("var/lib/dpkg/status.d/libc6")
    assert wanted("usr/share/doc/libc6/copyright")
    assert not wanted("usr/share/doc/libc6/changelog.gz")
    assert wanted(f"{SITE}/torch-2.13.0+cpu.dist-info/RECORD")
    assert not wanted(f"{SITE}/torch-2.13.0+cpu.dist-info/WHEEL")
    assert wanted(f"{SITE}/pip/_vendor/vendor.txt")
    assert not wanted(f"{SITE}/torch/__init__.py")


def test_symlinks_resolve_inside_the_tree() -> None:
    tree = MetaTree(
        files={"usr/lib/os-release": b"ID=debian\n", "usr/share/doc/gcc-12-base/copyright": b"c"},
        links={
            "etc/os-release": "../usr/lib/os-release",
            "usr/share/doc/libgcc-s1": "gcc-12-base",
            "lib": "usr/lib",
            "loop": "loop",
        },
    )
    assert tree.read("etc/os-release") == b"ID=debian\n"
    assert tree.read("/usr/share/doc/libgcc-s1/copyright") == b"c"
    assert tree.read("lib/os-release") == b"ID=debian\n"
    assert tree.read("loop/x") is None


def test_image_layers_with_whiteouts_match_the_directory(tmp_path: Path) -> None:
    root = make_rootfs(tmp_path / "rootfs")
    store = BlobStore(tmp_path / "cache")
    # Layer 2 deletes one copyright file and empties pip's dist-info (opaque directory);
    # layer 3 puts a different os-release over the symlink.
    top = tmp_path / "top"
    (top / "usr/share/doc/zlib1g").mkdir(parents=True)
    (top / "usr/share/doc/zlib1g/.wh.copyright").write_bytes(b"")
    (top / SITE / "pip-26.2.1.dist-info").mkdir(parents=True)
    (top / SITE / "pip-26.2.1.dist-info/.wh..wh..opq").write_bytes(b"")
    last = tmp_path / "last"
    (last / "etc").mkdir(parents=True)
    (last / "etc/os-release").write_text("ID=debian\nVERSION_ID=99\n")
    layers = [
        (write_layer_from_dir(d, store, compression=c), store, d.name)
        for d, c in ((root, "gzip"), (top, "zstd"), (last, "none"))
    ]
    image = append_layers(empty_image(), layers)

    from_image = tree_from_image(image)
    from_dir = tree_from_dir(root)
    assert "usr/share/doc/zlib1g/copyright" in from_dir.files
    assert "usr/share/doc/zlib1g/copyright" not in from_image.files
    assert not from_image.under(f"{SITE}/pip-26.2.1.dist-info")
    assert from_image.read("etc/os-release") == b"ID=debian\nVERSION_ID=99\n"
    assert "etc/os-release" not in from_image.links
    # Everything else is byte for byte what the directory holds.
    kept = {p for p in from_dir.files if "zlib1g/copyright" not in p and "pip-26" not in p}
    assert {p: from_image.files[p] for p in kept} == {p: from_dir.files[p] for p in kept}
    assert from_image.links["usr/share/doc/libncursesw6"] == "libtinfo6"
