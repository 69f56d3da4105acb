"""Images made from real Debian packages, real wheels and the real torch wheel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.artifacts import (
    SITE,
    TORCH_WHEEL,
    install_debs,
    install_wheels,
    torch_entries,
    tree,
    wheels,
)
from support.images import file, layer

from torchslim.analyze import Analysis

Run = Callable[..., Analysis]


@pytest.mark.network
def test_real_debian_packages(analyze_layers: Run, tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    files = install_debs(["make", "cpp-12", "openssh-server", "libc6-dev"], root)
    a = analyze_layers(layer(tree(root)), layer([file("root/.cache/pip/x", 10)]))
    # dpkg owners: every byte of each package is attributed to it
    for name, sizes in files.items():
        pkg = a.package("debian", name)
        assert pkg is not None and pkg.bytes == sum(sizes.values()), name
    # compilers and build tools: cc1 and cpp from cpp-12, make
    assert a.answers.compiler_present
    assert "usr/lib/gcc/x86_64-linux-gnu/12/cc1" in a.answers.compiler_evidence
    want_build = sum(
        s for p, s in files["cpp-12"].items() if p.startswith(("usr/lib/gcc/", "usr/bin/"))
    )
    want_build += files["make"]["usr/bin/make"]
    bt = a.category("build-tools")
    assert bt is not None and bt.bytes == want_build
    f = a.finding("compiler-present")
    assert f is not None and f.bytes == want_build
    # the SSH server, by owner
    ssh = a.category("ssh-server")
    assert ssh is not None and ssh.bytes == sum(files["openssh-server"].values())
    assert a.finding("ssh-server") is not None
    # libc6-dev: headers and static libraries
    every = {p: s for sizes in files.values() for p, s in sizes.items()}
    headers = a.category("headers")
    assert headers is not None and headers.bytes == sum(
        s for p, s in every.items() if p.startswith("usr/include/")
    )
    assert headers.by_owner["debian:make"] == files["make"]["usr/include/gnumake.h"]
    static = a.category("static-libs")
    assert static is not None and static.bytes == sum(
        s for p, s in files["libc6-dev"].items() if p.endswith(".a")
    )
    assert sum(c.bytes for c in a.categories) == a.files_bytes


@pytest.mark.network
def test_real_dev_wheels(analyze_layers: Run, tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    whls = wheels(
        [
            "pytest==8.3.3",
            "pluggy==1.5.0",
            "iniconfig==2.0.0",
            "packaging==24.1",
            "jupyter-core==5.7.2",
            "platformdirs==4.3.6",
            "traitlets==5.14.3",
        ]
    )
    install_wheels(whls, root)
    a = analyze_layers(layer(tree(root)))
    assert a.answers.dev_packages == sorted(
        ["iniconfig", "jupyter-core", "packaging", "platformdirs", "pluggy", "pytest", "traitlets"]
    )
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    dev = a.category("python.dev")
    assert dev is not None and dev.bytes == total
    for p in a.packages:
        assert p.kind == "python" and p.dev and p.bytes > 0
    pytest_pkg = a.package("python", "pytest")
    assert pytest_pkg is not None and pytest_pkg.version == "8.3.3"
    f = a.finding("dev-packages")
    assert f is not None and f.bytes == total and f.severity == "medium"


@pytest.mark.e2e
def test_real_torch_parts(analyze_layers: Run) -> None:
    if not TORCH_WHEEL.exists():
        pytest.skip(f"{TORCH_WHEEL} not present")
    entries = torch_entries(
        (
            "torch/bin/",
            "torch/include/ATen/core/",
            "torch/test/",
            "torch/lib/libtorch_global_deps",
            "torch/__init__.py",
        )
    )
    a = analyze_layers(layer(entries, "zstd"))

    shm = f"{SITE}/torch/bin/torch_shm_manager"

    def want(prefix: str) -> int:
        # torch_shm_manager is a runtime helper: it counts with torch.lib, not torch.bin.
        return sum(
            len(e.data) for e in entries if e.name.startswith(f"{SITE}/{prefix}") and e.name != shm
        ) + (sum(len(e.data) for e in entries if e.name == shm) if prefix == "torch/lib/" else 0)

    assert a.category("torch.bin").bytes == want("torch/bin/") > 0  # type: ignore[union-attr]
    assert a.category("torch.include").bytes == want("torch/include/") > 0  # type: ignore[union-attr]
    assert a.category("torch.lib").bytes == want("torch/lib/") > 0  # type: ignore[union-attr]
    tests = a.category("torch.test")
    assert (tests.bytes if tests else 0) == want("torch/test/")
    assert a.finding("torch-bin").bytes == want("torch/bin/")  # type: ignore[union-attr]
    assert a.finding("torch-include").bytes == want("torch/include/")  # type: ignore[union-attr]
