"""Variants, pins and tags."""

from __future__ import annotations

import pytest

from torchslim.errors import ConfigError
from torchslim.torchmeta import image_tag, torch_build


def test_cpu_pin_and_tag() -> None:
    b = torch_build("2.13.0", "cpu")
    assert b.requirement == "torch==2.13.0+cpu"
    assert b.index_url == "https://download.pytorch.org/whl/cpu"
    assert image_tag("1.2", b) == "v1.2-pytorch2.13-cpu"


def test_pypi_default_cuda_has_no_local_tag() -> None:
    b = torch_build("2.14.1", "cu130")
    assert b.requirement == "torch==2.14.1"
    assert image_tag("3", b) == "v3-pytorch2.14-cuda13.0"
    assert torch_build("2.14.1", "cu128").requirement == "torch==2.14.1+cu128"


def test_variant_not_shipped() -> None:
    with pytest.raises(ConfigError, match="does not ship 'cu118'"):
        torch_build("2.14.1", "cu118")
