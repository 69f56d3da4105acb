"""The probe on three real base layouts: torchslim's Debian, python:slim and conda."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.images import ImageMaker
from support.trees import conda_tree, debian_tree, link, slim_tree, write

from torchslim.build.probe import BaseProbe, duplicate_cuda, lib_family, probe_image, require_python
from torchslim.cache import BlobStore
from torchslim.errors import BuildError, IntegrityError
from torchslim.oci.layout import read_oci_layout, write_oci_layout

HOST_GLIBC = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
GLIBC = HOST_GLIBC.split()[-1] if HOST_GLIBC.startswith("glibc") else "?"


def test_debian_base(tmp_path: Path, make_image: ImageMaker) -> None:
    img = make_image([debian_tree(tmp_path / "debian")])
    p = probe_image(img)
    assert p.python_exe == "/usr/bin/python3.11"
    assert p.python_version == "3.11"
    assert p.prefix == "/usr"
    # Debian's site.py: pip installs into /usr/local/.../dist-packages, not site-packages.
    assert p.site_packages == "/usr/local/lib/python3.11/dist-packages"
    assert p.glibc == GLIBC
    assert p.shell is None  # torchslim's Debian base ships no shell
    assert p.users == {0: ("root", "/root"), 1000: ("app", "/home/app")}
    assert p.user_for(1000) == "app"  # reuse it, do not add a second uid 1000
    assert p.user_for(1001) is None
    assert p.groups == {0: "root", 1000: "app"}
    assert p.os_release["ID"] == "debian"  # through the /etc/os-release symlink
    assert p.os_release["VERSION_ID"] == "12"
    assert p.arch == "amd64"
    assert p.cuda_libs == {}
    assert p.exists("/bin/python3")  # /bin -> usr/bin, python3 -> python3.11
    require_python(p, "base")
    require_python(p, "base", "3.11")


def test_python_version_mismatch_is_one_line(tmp_path: Path, make_image: ImageMaker) -> None:
    p = probe_image(make_image([debian_tree(tmp_path / "debian")]))
    with pytest.raises(BuildError, match=r"has Python 3\.11 .* asks for 3\.13") as exc:
        require_python(p, "torchslim.toml field `base`", "3.13")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("source", ["bytes", "dpkg", "name"])
def test_glibc_sources(tmp_path: Path, make_image: ImageMaker, source: str) -> None:
    root = debian_tree(tmp_path / "d", libc=source == "bytes", dpkg=source == "dpkg")
    if source == "name":  # glibc < 2.34: libc.so.6 -> libc-2.31.so
        lib = root / "usr/lib/x86_64-linux-gnu"
        write(lib / "libc-2.31.so", b"\x7fELF not really")
        link(lib / "libc.so.6", "libc-2.31.so")
    want = {"bytes": GLIBC, "dpkg": "2.36", "name": "2.31"}[source]
    assert probe_image(make_image([root])).glibc == want


def test_slim_base(tmp_path: Path, make_image: ImageMaker) -> None:
    img = make_image(
        [(slim_tree(tmp_path / "slim"), "zstd")],
        env={"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    p = probe_image(img)
    assert p.python_exe == "/usr/local/bin/python3.11"  # python3 -> python3.11 followed
    assert p.python_version == "3.11"
    assert p.prefix == "/usr/local"
    assert p.site_packages == "/usr/local/lib/python3.11/site-packages"
    assert p.shell == "/bin/sh"
    assert p.glibc == GLIBC
    assert p.users == {0: ("root", "/root")}
    assert p.user_for(1000) is None  # the build must add its user
    require_python(p, "base")


def test_slim_base_from_an_oci_layout(
    tmp_path: Path, make_image: ImageMaker, store: BlobStore
) -> None:
    """The same probe through a real source: an OCI layout directory read back from disk."""
    img = make_image([(slim_tree(tmp_path / "slim"), "none")])
    write_oci_layout(img, tmp_path / "layout")
    p = probe_image(read_oci_layout(tmp_path / "layout"))
    assert p.site_packages == "/usr/local/lib/python3.11/site-packages"
    assert p.shell == "/bin/sh"


def test_conda_base(tmp_path: Path, make_image: ImageMaker) -> None:
    img = make_image(
        [conda_tree(tmp_path / "conda")],
        env={"PATH": "/opt/conda/bin:/usr/local/nvidia/bin:/usr/local/sbin:/usr/bin:/bin"},
    )
    p = probe_image(img)
    assert p.python_exe == "/opt/conda/bin/python3.11"
    assert p.prefix == "/opt/conda"
    assert p.site_packages == "/opt/conda/lib/python3.11/site-packages"
    assert p.glibc == GLIBC
    assert p.shell == "/bin/sh"
    assert p.os_release["ID"] == "ubuntu"
    elf = (tmp_path / "conda/opt/conda/lib/libcudart.so.12").stat().st_size
    assert p.cuda_libs == {
        "/opt/conda/lib/libcudart.so.12": elf,
        "/usr/local/cuda-12.1/lib64/libcublas.so.12": elf,
    }
    assert p.cuda_bytes == 2 * elf
    # torch's nvidia-cublas wheel brings libcublas again; cudnn is not in this base.
    again = BaseProbe.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p  # the file index is not part of equality
    dup = duplicate_cuda(p, ["nvidia/cublas/lib/libcublas.so.12", "libcudnn.so.9"])
    assert dup == {"/usr/local/cuda-12.1/lib64/libcublas.so.12": elf}
    assert lib_family("libcublasLt.so.12.1.3.1") == "libcublasLt"


def test_conda_found_without_path(tmp_path: Path, make_image: ImageMaker) -> None:
    """No PATH in the config: /opt/conda/bin is still looked at."""
    p = probe_image(make_image([conda_tree(tmp_path / "conda")]))
    assert p.python_exe == "/opt/conda/bin/python3.11"


def test_venv_over_slim(tmp_path: Path, make_image: ImageMaker) -> None:
    venv = tmp_path / "venv"
    link(venv / "opt/venv/bin/python", "/usr/local/bin/python3.11")
    link(venv / "opt/venv/bin/python3", "python")
    link(venv / "opt/venv/bin/python3.11", "python")
    (venv / "opt/venv/lib/python3.11/site-packages").mkdir(parents=True)
    write(
        venv / "opt/venv/pyvenv.cfg",
        "home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n",
    )
    img = make_image(
        [slim_tree(tmp_path / "slim"), venv], env={"PATH": "/opt/venv/bin:/usr/local/bin:/bin"}
    )
    p = probe_image(img)
    assert p.python_exe == "/opt/venv/bin/python3.11"  # the venv's, not the one it links to
    assert p.prefix == "/opt/venv"
    assert p.site_packages == "/opt/venv/lib/python3.11/site-packages"


def test_no_python_is_one_clear_line(tmp_path: Path, make_image: ImageMaker) -> None:
    root = tmp_path / "busybox"
    write(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    write(root / "bin/sh", b"\x7fELF stand-in", 0o755)
    link(root / "usr/bin/python3", "/usr/bin/python3.11")  # dangling: no interpreter
    p = probe_image(make_image([root]))
    assert p.python_exe is None and p.site_packages is None
    assert p.shell == "/bin/sh"
    with pytest.raises(BuildError) as exc:
        require_python(p, 'torchslim.toml field `base` = "busybox"')
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith('torchslim.toml field `base` = "busybox": the base image has no usable')
    for base in ("debian", "python:3.X-slim", "pytorch/pytorch:*-runtime", "nvidia/cuda:*-runtime"):
        assert base in msg
    assert "distroless/python3" in msg


def test_python_without_stdlib_is_not_usable(tmp_path: Path, make_image: ImageMaker) -> None:
    root = slim_tree(tmp_path / "slim")
    (root / "usr/local/lib/python3.11/os.py").unlink()  # an interpreter without its stdlib
    p = probe_image(make_image([root]))
    assert p.python_exe is None
    with pytest.raises(BuildError, match="no usable Python"):
        require_python(p, "base")


def test_corrupt_layer_blob_is_an_integrity_error(
    tmp_path: Path, make_image: ImageMaker, store: BlobStore
) -> None:
    img = make_image([(debian_tree(tmp_path / "d"), "none")])
    blob = store.path(img.layers()[0].digest)
    data = bytearray(blob.read_bytes())
    data[-2000] ^= 0xFF  # in the tar's end padding: only the blob digest can notice
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="was corrupt and has been removed from the cache"):
        probe_image(img)
    assert not blob.exists()  # evicted: the next build makes it again
