"""The CUDA -> minimum driver table and the helpers that read variants and image labels."""

from __future__ import annotations

import pytest

from torchslim.errors import ConfigError
from torchslim.runtime.cuda import (
    MIN_DRIVER,
    cuda_of_image,
    cuda_of_variant,
    driver_at_least,
    need_for,
    parse_driver,
)
from torchslim.torchmeta import _RELEASES


def test_table_is_ordered_and_consistent() -> None:
    rows = sorted(MIN_DRIVER.values(), key=lambda n: tuple(int(p) for p in n.cuda.split(".")))
    toolkit = [parse_driver(r.toolkit) for r in rows]
    assert toolkit == sorted(toolkit), "a newer CUDA never needs an older driver"
    for r in rows:
        assert parse_driver(r.minor_compat) <= parse_driver(r.toolkit)


def test_every_shipped_variant_has_a_row() -> None:
    for variants, _ in _RELEASES.values():
        for v in variants:
            cuda = cuda_of_variant(v)
            assert cuda is None or cuda in MIN_DRIVER, v


def test_known_rows() -> None:
    assert MIN_DRIVER["13.0"].minor_compat == "580.65.06"
    assert MIN_DRIVER["12.8"].toolkit == "570.26"
    assert MIN_DRIVER["12.8"].minor_compat == "525.60.13"
    assert MIN_DRIVER["11.8"].minor_compat == "450.80.02"


def test_unlisted_minor_falls_back_to_the_major_floor() -> None:
    need = need_for("12.7")
    assert need is not None and need.minor_compat == "525.60.13"
    assert need_for("99.0") is None


def test_driver_compare_is_numeric() -> None:
    assert driver_at_least("535.104.05", "535.54.03")
    assert not driver_at_least("535.54.03", "535.104.05")
    assert driver_at_least("570.26", "570.26")
    with pytest.raises(ValueError):
        parse_driver("N/A")


def test_variant_and_image() -> None:
    assert cuda_of_variant("cu130") == "13.0" and cuda_of_variant("cpu") is None
    with pytest.raises(ConfigError):
        cuda_of_variant("gpu")
    assert cuda_of_image({"dev.torchslim.torch": "2.9.0+cu128"}, []) == "12.8"
    assert cuda_of_image({}, ["PATH=/bin", "CUDA_VERSION=12.4.1"]) == "12.4"
    assert cuda_of_image({"dev.torchslim.torch": "2.9.0+cpu"}, []) is None
