"""Real trees, stores and images for the oci tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from torchslim.cache import BlobStore
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import Compression, write_layer_from_dir
from torchslim.oci.mutate import Healthcheck, append_layers, with_config

LONG = "deep/" + "x" * 60 + "/" + "y" * 60 + "/file.txt"  # > 100 chars: needs a PAX header


def make_tree(root: Path, *, mtime: int = 1_700_000_000, uid: int = 0) -> Path:
    """A small tree with every kind of entry the layer writer must get right."""
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "etc").mkdir()
    (root / "a").mkdir()
    (root / "deep").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/false\n" + b"\0" * 5000)
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "suid").write_bytes(b"setuid program")
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/sbin/nologin\n")
    (root / "etc" / "passwd").chmod(0o644)
    os.link(root / "etc" / "passwd", root / "etc" / "passwd.hard")
    (root / "etc" / "link").symlink_to("passwd")
    (root / "a" / "b").write_text("b")
    (root / "a-c").write_text("a-c")
    (root / "données.txt").write_text("é")
    long = root / LONG
    long.parent.mkdir(parents=True)
    long.write_text("long")
    for p in [root, *root.rglob("*")]:
        if os.geteuid() == 0:
            os.lchown(p, uid, uid)
        if not p.is_symlink():
            os.utime(p, (mtime, mtime))
    (root / "bin" / "suid").chmod(0o4755)  # after chown, which clears setuid
    return root


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


ImageFactory = Callable[..., Image]


@pytest.fixture
def image_factory(store: BlobStore) -> ImageFactory:
    """Build a one-layer image from a directory, with a runtime config."""

    def build(root: Path, compression: Compression = "gzip", cmd: list[str] | None = None) -> Image:
        layer = write_layer_from_dir(root, store, compression=compression)
        img = append_layers(empty_image(), [(layer, store, "torchslim: test layer")])
        return with_config(
            img,
            user="1000:1000",
            cmd=cmd or ["/bin/tool"],
            env={"PATH": "/bin"},
            healthcheck=Healthcheck(("CMD", "/bin/tool", "health"), interval_s=5, retries=2),
            labels={"org.opencontainers.image.title": "test"},
            created="2024-01-01T00:00:00Z",
        )

    return build


@pytest.fixture(scope="session")
def static_hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding /bin/hello, a statically linked C program (for podman run)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed; it builds the static test binary")
    work = tmp_path_factory.mktemp("hello")
    src = work / "hello.c"
    src.write_text(
        "#include <stdio.h>\n#include <unistd.h>\n"
        "int main(int c, char **v) {\n"
        '  printf("hello %s uid=%d\\n", c > 1 ? v[1] : "world", (int)getuid());\n'
        "  return 0;\n}\n"
    )
    root = work / "root"
    (root / "bin").mkdir(parents=True)
    proc = subprocess.run(
        [gcc, "-static", "-Os", "-s", "-o", str(root / "bin" / "hello"), str(src)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"gcc -static failed (is libc6-dev installed?): {proc.stderr[-300:]}")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return root
