"""Session fixtures for the slim tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.slim import TORCH_WHEEL, torch_slice_member, unzip


@pytest.fixture(scope="session")
def torch_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only template site-packages holding a slice of the real torch wheel."""
    if not TORCH_WHEEL.exists():
        pytest.skip(f"{TORCH_WHEEL} not present")
    site = tmp_path_factory.mktemp("torch-slice")
    unzip(TORCH_WHEEL, site, torch_slice_member)
    return site
