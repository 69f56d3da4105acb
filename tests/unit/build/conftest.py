"""Fixtures for the build tests: a blob store and base images made from real trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.images import make_image

from torchslim.cache import BlobStore


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


__all__ = ["make_image", "store"]
