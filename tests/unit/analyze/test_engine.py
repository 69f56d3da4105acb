"""Hostile input: never a traceback, never a write, always one clear TorchslimError."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from support.images import Blob, Entry, Spec, file, layer, sha, tar_bytes, write_archive, write_oci

from torchslim.analyze import Analysis, Limits, analyze, open_image
from torchslim.errors import IntegrityError, TorchslimError

Run = Callable[..., Analysis]


def _tree(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def test_traversal_and_absolute_names_are_reported_not_followed(
    analyze_layers: Run, tmp_path: Path
) -> None:
    before = _tree(tmp_path.parent)
    a = analyze_layers(
        layer(
            [
                file("../../evil", 100),
                file("/etc/abs", 10),
                file("a/../b", 20),
                Entry("x/link", kind="hardlink", linkname="../../../etc/shadow"),
            ]
        )
    )
    f = a.finding("unsafe-paths")
    assert f is not None and f.severity == "high"
    joined = " ".join(f.paths)
    assert "../../evil" in joined and "/etc/abs" in joined and "a/../b" in joined
    assert "x/link" in joined
    assert set(a.view.nodes) >= {"etc/abs", "b"} and "evil" not in a.view.nodes
    # only the test's own image directory appeared
    assert {p for p in _tree(tmp_path.parent) - before if not p.startswith(str(tmp_path))} == set()


def test_symlink_and_hardlink_loops(analyze_layers: Run) -> None:
    a = analyze_layers(
        layer(
            [
                Entry("a", kind="symlink", linkname="b"),
                Entry("b", kind="symlink", linkname="a"),
                Entry("etc/passwd", kind="symlink", linkname="/etc/passwd"),
                Entry("h1", kind="hardlink", linkname="h1"),
                Entry("self", kind="symlink", linkname="self/self"),
            ]
        ),
        layer(
            [
                Entry("h2", kind="hardlink", linkname="h3"),
                Entry("h3", kind="hardlink", linkname="h2"),
            ]
        ),
        user="app",
    )
    assert a.view.resolve("a/x") is None
    assert a.view.get("h1") is None and a.view.get("h2") is None
    assert a.view.get("self") is None
    assert a.answers.runs_as_root is False  # passwd unreadable: runtime decides


def _bomb_blob(size: int, how: str) -> Blob:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        ti = tarfile.TarInfo("zeros")
        ti.size = size
        tar.addfile(ti, io.BytesIO(bytes(size)))
    data = raw.getvalue()
    comp = gzip.compress(data, 9) if how == "gzip" else zstandard.ZstdCompressor(19).compress(data)
    kind = "application/vnd.oci.image.layer.v1.tar+" + how
    return Blob(comp, sha(data), kind)


@pytest.mark.parametrize("how", ["gzip", "zstd"])
def test_decompression_bomb_is_bounded(tmp_path: Path, how: str) -> None:
    blob = _bomb_blob(16 << 20, how)
    img = write_oci(tmp_path / "img", Spec([blob]))
    limits = Limits(ratio_floor=1 << 20, max_ratio=100)
    with pytest.raises(TorchslimError, match="decompression bomb"):
        analyze(open_image(f"oci:{img}"), name="x:v1", limits=limits)
    with pytest.raises(TorchslimError, match="more than 0.0 GiB|limit"):
        analyze(open_image(f"oci:{img}"), name="x:v1", limits=Limits(max_uncompressed=8 << 20))


def test_member_claiming_terabytes(tmp_path: Path) -> None:
    ti = tarfile.TarInfo("huge")
    ti.size = 5 << 40
    header = ti.tobuf(format=tarfile.GNU_FORMAT)
    raw = header + bytes(4096)
    img = write_oci(
        tmp_path / "img",
        Spec([Blob(gzip.compress(raw), sha(raw), "application/vnd.oci.image.layer.v1.tar+gzip")]),
    )
    with pytest.raises(TorchslimError, match="claims 5497558138880 bytes"):
        analyze(open_image(f"oci:{img}"), name="x:v1")


def test_descriptor_claiming_terabytes(tmp_path: Path) -> None:
    img = write_oci(tmp_path / "img", Spec([layer([file("a", 10)])]))
    digest = json.loads((img / "index.json").read_text())["manifests"][0]["digest"]
    man_path = img / "blobs/sha256" / digest.split(":")[1]
    man = json.loads(man_path.read_bytes())
    man["layers"][0]["size"] = 3 << 40
    data = json.dumps(man).encode()
    man_path.unlink()
    (img / "blobs/sha256" / sha(data).split(":")[1]).write_bytes(data)
    index = json.loads((img / "index.json").read_text())
    index["manifests"][0].update(digest=sha(data), size=len(data))
    (img / "index.json").write_text(json.dumps(index))
    with pytest.raises(TorchslimError, match="claims"):
        analyze(open_image(f"oci:{img}"), name="x:v1")


@pytest.mark.parametrize("how", ["gzip", "zstd", "none"])
def test_truncated_tar(tmp_path: Path, how: str) -> None:
    raw = tar_bytes([file("a", 50_000), file("b", 50_000)])[:60_000]
    blob = layer(raw, how)
    img = write_oci(tmp_path / "img", Spec([blob]))
    with pytest.raises(TorchslimError, match="truncated|corrupt"):
        analyze(open_image(f"oci:{img}"), name="x:v1")


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    raw = tar_bytes([file("a", 200_000)])
    comp = gzip.compress(raw)[:-5000]
    img = write_oci(
        tmp_path / "img",
        Spec([Blob(comp, sha(raw), "application/vnd.oci.image.layer.v1.tar+gzip")]),
    )
    with pytest.raises(IntegrityError, match="truncated|ends early"):
        analyze(open_image(f"oci:{img}"), name="x:v1")


def test_garbage_layer(tmp_path: Path) -> None:
    junk = b"\x1f\x8b" + os.urandom(5000)
    img = write_oci(
        tmp_path / "img",
        Spec([Blob(junk, sha(junk), "application/vnd.oci.image.layer.v1.tar+gzip")]),
    )
    with pytest.raises(TorchslimError, match="corrupt"):
        analyze(open_image(f"oci:{img}"), name="x:v1")


def test_manifest_pointing_at_missing_blobs(tmp_path: Path) -> None:
    spec = Spec([layer([file("a", 10)])])
    img = write_oci(tmp_path / "img", spec, skip_blobs=True)
    with pytest.raises(TorchslimError, match="missing"):
        analyze(open_image(f"oci:{img}"), name="x:v1")
    archive = write_archive(tmp_path / "a.tar", spec)
    with tarfile.open(archive) as t:
        names = [m.name for m in t]
    # Rewrite the archive without its layer member.
    bad = tmp_path / "bad.tar"
    with tarfile.open(archive) as src, tarfile.open(bad, "w") as dst:
        for m in src:
            if not m.name.endswith("layer.tar"):
                dst.addfile(m, src.extractfile(m))
    assert any(n.endswith("layer.tar") for n in names)
    with pytest.raises(TorchslimError, match="missing"):
        analyze(open_image(f"docker-archive:{bad}"), name="x:v1")


def test_non_utf8_names(analyze_layers: Run) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        ti = tarfile.TarInfo("app/caf\xe9-\udcff.bin")
        ti.size = 3
        tar.addfile(ti, io.BytesIO(b"abc"))
    a = analyze_layers(layer(raw.getvalue()))
    from torchslim.analyze.html import to_html
    from torchslim.analyze.report import to_json

    doc = json.dumps(to_json(a))  # must not raise
    assert a.files_bytes == 3 and "app/caf" in doc
    to_html(a)


def test_bad_reference_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TorchslimError, match="not an image reference"):
        open_image(str(tmp_path / "nope"))
    with pytest.raises(TorchslimError, match="reference"):
        open_image("docker://")
    with pytest.raises(TorchslimError):
        open_image(f"docker-archive:{tmp_path / 'missing.tar'}")
