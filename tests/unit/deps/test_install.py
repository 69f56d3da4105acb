from __future__ import annotations

import shutil
from pathlib import Path

from support.wheels import make_wheel

from torchslim.deps.install import Scheme, install_wheel

SITE = "/usr/local/lib/python3.11/dist-packages"


def test_install_into_image_tree(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    root = tmp_path / "root"
    written = install_wheel(wheel, root, Scheme.debian("3.11"), "/usr/bin/python3.11")

    assert f"{SITE}/demo/__init__.py" in written
    assert "/usr/local/bin/demo" in written and "/usr/local/bin/demo-tool" in written
    assert all(p.startswith("/usr/local/") for p in written)
    site = root / SITE.lstrip("/")
    assert (site / "demo" / "data.txt").read_text() == "payload\n"

    launcher = (root / "usr/local/bin/demo").read_text()
    assert launcher.startswith("#!/usr/bin/python3.11\n")
    assert "from demo import main" in launcher
    assert (root / "usr/local/bin/demo-tool").read_text().startswith("#!/usr/bin/python3.11")
    assert (root / "usr/local/bin/demo").stat().st_mode & 0o111

    info = site / "demo-1.0.dist-info"
    assert (info / "INSTALLER").read_text() == "torchslim"
    record = (info / "RECORD").read_text()
    assert "demo/__init__.py,sha256=" in record
    assert "../../../bin/demo," in record  # scripts recorded relative to site-packages
    assert "demo-1.0.dist-info/RECORD,," in record
    assert not list(root.rglob("*.pyc")) and not list(root.rglob("__pycache__"))


def test_install_from_digest_named_blob_is_identical(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    blob = tmp_path / "0123abcd"  # the cache names files by digest, not by wheel name
    shutil.copyfile(wheel, blob)
    a = install_wheel(wheel, tmp_path / "a", Scheme.debian(), "/usr/bin/python3")
    b = install_wheel(blob, tmp_path / "b", Scheme.debian(), "/usr/bin/python3")
    assert a == b
    for rel in a:
        fa, fb = tmp_path / "a" / rel.lstrip("/"), tmp_path / "b" / rel.lstrip("/")
        assert fa.read_bytes() == fb.read_bytes()


def test_a_wheel_damaged_on_disk_is_one_clear_error(tmp_path: Path) -> None:
    import zipfile

    import pytest

    from torchslim.errors import IntegrityError

    wheel = make_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("demo/data.txt")
    data = bytearray(wheel.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start : start + info.compress_size] = b"\xff" * info.compress_size  # its contents
    wheel.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="is damaged .*delete it"):
        install_wheel(wheel, tmp_path / "root", Scheme.debian("3.11"), "/usr/bin/python3.11")
