"""Components from a real (small) rootfs: Debian packages, Python dists, vendored dists,
the lock's hashes, and each removed byte booked to the package it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.sbom import CREATED, DIGEST, SITE, make_rootfs

from torchslim.debian.spec import DebPackage, SkippedFile
from torchslim.deps.lock import LockedWheel
from torchslim.sbom.attribution import removals_from_skipped
from torchslim.sbom.collect import collect
from torchslim.sbom.dpkg import debian_packages, os_release
from torchslim.sbom.model import BaseRef, ImageIdentity, Removal, RemovedByRule
from torchslim.sbom.pydists import index_of, python_dists
from torchslim.sbom.tree import MetaTree, tree_from_dir

IMAGE = ImageIdentity("hello-torch", DIGEST, tag="v1.2-pytorch2.13-cpu", created=CREATED)
TORCH_SHA = "6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b"
TORCH_WHEEL = LockedWheel(
    "torch",
    "2.13.0+cpu",
    "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    "https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    TORCH_SHA,
    None,
)
ZLIB = DebPackage(
    "zlib1g",
    "1:1.2.13.dfsg-1",
    "amd64",
    "pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb",
    "sha256:" + "cd" * 32,
    100,
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> MetaTree:
    return tree_from_dir(make_rootfs(tmp_path_factory.mktemp("sbom") / "rootfs"))


def test_os_release_gives_the_purl_distro(tree: MetaTree) -> None:
    os_ = os_release(tree)
    assert (os_.id, os_.version_id, os_.codename) == ("debian", "12", "bookworm")
    assert os_.distro == "debian-12"


def test_debian_packages_from_status_d(tree: MetaTree) -> None:
    debs = {p.name: p for p in debian_packages(tree, locked=[ZLIB], mirror="http://m/debian")}
    assert sorted(debs) == [
        "libbz2-1.0", "libcrypt1", "libffi8", "libncursesw6", "libssl3", "libtinfo6", "tzdata",
        "zlib1g",
    ]  # fmt: skip
    bz2 = debs["libbz2-1.0"]
    assert (bz2.version, bz2.source, bz2.source_version) == ("1.0.8-5+b1", "bzip2", "1.0.8-5")
    assert debs["libssl3"].source == "openssl" and debs["libssl3"].source_version is None
    assert debs["tzdata"].source is None and debs["tzdata"].arch == "all"
    # /usr/share/doc/libncursesw6 is a symlink to libtinfo6: same license.
    assert debs["libncursesw6"].license == debs["libtinfo6"].license
    assert debs["libncursesw6"].license.expression is not None
    # The lock adds the signed .deb hash; packages the lock does not know stay without.
    assert debs["zlib1g"].sha256 == "cd" * 32 and debs["zlib1g"].mirror == "http://m/debian"
    assert debs["libssl3"].sha256 is None


def test_python_dists_vendored_and_locked(tree: MetaTree) -> None:
    found = python_dists(tree, locked=[TORCH_WHEEL])
    by_key = {i.key: i for i in found}
    assert by_key["autocommand"].dist.vendored_by == "setuptools"
    pkgs = [i for i in found if i.key == "packaging"]
    # setuptools vendors packaging 26.3 (dist-info), pip 26.2 (vendor.txt): both listed.
    assert {(p.dist.version, p.dist.vendored_by) for p in pkgs} == {
        ("26.3", "setuptools"),
        ("26.2", "pip"),
    }
    assert by_key["requests"].dist.vendored_by == "pip"
    assert by_key["requests"].dist.license.expression is None
    torch = by_key["torch"].dist
    assert (torch.sha256, torch.wheel) == (TORCH_SHA, TORCH_WHEEL.filename)
    assert torch.index == "https://download.pytorch.org/whl/cpu"
    assert by_key["click"].dist.vendored_by is None and by_key["click"].dist.sha256 is None


@pytest.mark.parametrize(
    ("url", "index"),
    [
        (
            "https://files.pythonhosted.org/packages/a9/16/x/anyio-4.16.0-py3-none-any.whl",
            "https://pypi.org/simple",
        ),
        (
            "https://mirror.example/simple/anyio/anyio-4.16.0-py3-none-any.whl",
            "https://mirror.example/simple",
        ),
        ("file:///opt/pypi/files/h11-0.16.0-py3-none-any.whl", "file:///opt/pypi/files"),
    ],
)
def test_index_of(url: str, index: str) -> None:
    assert index_of(url) == index


def test_removals_are_booked_to_their_component(tree: MetaTree) -> None:
    removals = [
        Removal("torch-headers", f"/{SITE}/torch/include/ATen/Tensor.h", 1000),
        Removal("torch-headers", f"/{SITE}/torch/include/c10/core/Device.h", 500),
        Removal("strip-symbols", f"/{SITE}/torch/lib/libtorch_cpu.so", 7000),
        Removal(
            "pycache", f"/{SITE}/setuptools/_vendor/packaging/__pycache__/tags.cpython-311.pyc", 30
        ),
        Removal("package-test-suites", f"/{SITE}/setuptools/tests/test_dist.py", 40),
        Removal("pycache", "/opt/elsewhere/x.pyc", 3),
        *removals_from_skipped([SkippedFile("libssl3", "/usr/share/doc/libssl3/changelog.gz", 77)]),
    ]
    inputs = collect(tree, IMAGE, BaseRef("debian:bookworm"), removals=removals)
    dists = {(d.name, d.version): d for d in inputs.python}
    assert dists[("torch", "2.13.0+cpu")].removed == (
        RemovedByRule("strip-symbols", 1, 7000),
        RemovedByRule("torch-headers", 2, 1500),
    )
    assert dists[("packaging", "26.3")].removed == (RemovedByRule("pycache", 1, 30),)
    assert dists[("setuptools", "84.2.1")].removed == (RemovedByRule("package-test-suites", 1, 40),)
    debs = {d.name: d for d in inputs.debian}
    assert debs["libssl3"].removed == (RemovedByRule("debian-docs", 1, 77),)
    assert inputs.unattributed == (RemovedByRule("pycache", 1, 3),)
    total = sum(r.bytes for c in [*inputs.python, *inputs.debian] for r in c.removed)
    assert total + 3 == sum(r.bytes for r in removals)


def test_torch_variant_from_the_local_version_tag(tree: MetaTree) -> None:
    inputs = collect(tree, IMAGE, BaseRef("debian:bookworm"))
    assert inputs.torch is not None and (inputs.torch.variant, inputs.torch.cuda) == ("cpu", None)
    torch = next(d for d in inputs.python if d.name == "torch")
    assert ("torchslim:torch:variant", "cpu") in torch.properties


def test_collect_accepts_a_rootfs_path(tmp_path: Path, tree: MetaTree) -> None:
    root = make_rootfs(tmp_path / "r")
    assert collect(root, IMAGE, BaseRef("debian:bookworm")) == collect(
        tree, IMAGE, BaseRef("debian:bookworm")
    )


def test_removals_round_trip_through_json() -> None:
    rows = [Removal("pycache", "/a/b.pyc", 3), Removal("debian-docs", "/usr/share/doc/x/y", 9, "x")]
    assert [Removal.from_json(r.to_json()) for r in rows] == rows
