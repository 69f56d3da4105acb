"""Fixtures for the oci tests: real trees and images, and a real docker-registry on loopback
(plain and with htpasswd)."""

from __future__ import annotations

import hashlib
import itertools
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.images import image_factory, static_hello, tree
from support.registry import PASSWORD, USER, ImageMaker, Registry, start_registry

from torchslim.cache import BlobStore
from torchslim.oci.empty import empty_image
from torchslim.oci.image import Image
from torchslim.oci.layer import write_layer_from_dir
from torchslim.oci.mutate import append_layers, with_config


def _need_registry() -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    _need_registry()
    reg = start_registry(tmp_path_factory.mktemp("registry-plain"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    _need_registry()
    reg = start_registry(tmp_path_factory.mktemp("registry-auth"), user=USER, password=PASSWORD)
    yield reg
    reg.stop()


@pytest.fixture
def no_host_logins(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Never read the developer's own ~/.docker or podman logins."""
    cfg = tmp_path_factory.mktemp("docker-config")
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return cfg


_repo_counter = itertools.count()


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses (the registry is shared by the session)."""
    name = request.node.name.lower()
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")[:40].strip("-")
    return f"t/{slug}-{next(_repo_counter)}"


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


@pytest.fixture
def make_image(store: BlobStore, tmp_path: Path) -> ImageMaker:
    """``make_image({"path": size_or_bytes, ...}, ..., base=img, arch=...)``: one layer per dict.

    Sizes become pseudo-random bytes seeded by path and size, so the same
    arguments give the same layer and different ones never collide.
    """
    counter = itertools.count()

    def build(
        *layers: dict[str, int | bytes], base: Image | None = None, arch: str = "amd64"
    ) -> Image:
        img = base if base is not None else empty_image(arch=arch)
        added = []
        for files in layers:
            root = tmp_path / f"layer{next(counter)}"
            for rel, content in files.items():
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, int):
                    seed = hashlib.sha256(f"{rel}:{content}".encode()).digest()
                    content = random.Random(seed).randbytes(content)
                path.write_bytes(content)
            layer = write_layer_from_dir(root, store, compression="gzip")
            added.append((layer, store, f"test layer {sorted(files)}"))
        img = append_layers(img, added)
        return with_config(img, cmd=["/bin/app"], user="1000:1000", created="2024-01-01T00:00:00Z")

    return build


__all__ = ["image_factory", "static_hello", "tree"]
