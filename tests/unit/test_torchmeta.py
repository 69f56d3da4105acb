"""Variants, pins and tags."""

from __future__ import annotations

import re
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

from torchslim.errors import ConfigError
from torchslim.torchmeta import (
    _RELEASES,
    CUDA_DRIVERS,
    check_driver,
    cuda_of_requirements,
    cuda_version,
    image_tag,
    min_driver,
    minor,
    parse_driver,
    pypi_default_variant,
    torch_build,
    variant_label,
)


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


# --- CUDA versions and driver floors -------------------------------------------------


def test_cuda_version_and_label() -> None:
    assert cuda_version("cu118") == "11.8"
    assert cuda_version("cu130") == "13.0"
    assert cuda_version("cpu") is None
    assert variant_label("cu128") == "cuda12.8"
    assert torch_build("2.14.1", "cu128").cuda == "12.8"


def test_every_shipped_variant_has_a_driver_row() -> None:
    for rel, (variants, default) in _RELEASES.items():
        assert default in variants, rel
        for v in variants:
            cuda = cuda_version(v)
            assert cuda is None or cuda in CUDA_DRIVERS, (rel, v)


def test_driver_table_is_monotonic_and_compat_below_toolkit() -> None:
    rows = sorted(CUDA_DRIVERS.values(), key=lambda r: parse_driver(r.cuda))
    toolkit = [parse_driver(r.toolkit) for r in rows]
    assert toolkit == sorted(toolkit)
    for r in rows:
        assert parse_driver(r.minor_compat) <= parse_driver(r.toolkit), r


@pytest.mark.parametrize(
    ("variant", "compat", "driver"),
    [
        ("cu118", True, "450.80.02"),
        ("cu118", False, "520.61.05"),
        ("cu126", True, "525.60.13"),
        ("cu126", False, "560.28.03"),
        ("cu128", False, "570.26"),
        ("cu130", True, "580.65.06"),
        ("cu130", False, "580.65.06"),
        ("cu127", True, "525.60.13"),  # unlisted minor: its major's compatibility floor
        ("cpu", True, None),
    ],
)
def test_min_driver(variant: str, compat: bool, driver: str | None) -> None:
    assert min_driver(variant, compat=compat) == driver


def test_driver_too_old_for_variant() -> None:
    check_driver("570.124.06", "cu128")  # newer than both floors
    check_driver("535.104.05", "cu128")  # minor-version compatibility
    with pytest.raises(ConfigError, match=r"535\.104\.05 is older than 570\.26"):
        check_driver("535.104.05", "cu128", compat=False)
    with pytest.raises(ConfigError, match=r"570\.124\.06 is older than 580\.65\.06.*cu130"):
        check_driver("570.124.06", "cu130")
    check_driver("1.0", "cpu")


def test_bad_variant_spelling() -> None:
    with pytest.raises(ConfigError, match="neither `cpu` nor `cuXYZ`"):
        torch_build("2.14.1", "cuda13")


def test_cuda_of_requirements_spellings() -> None:
    pin = 'nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux"'
    assert cuda_of_requirements([pin]) == "12.8"
    assert cuda_of_requirements(["nvidia_cuda_runtime_cu12==12.4.127"]) == "12.4"
    assert cuda_of_requirements(["cuda-toolkit[cublas,cudart]==13.0.3"]) == "13.0"
    assert cuda_of_requirements(["nvidia-cuda-runtime==13.0.96"]) == "13.0"
    assert cuda_of_requirements(["filelock", "nvidia-nccl-cu13==2.30.7"]) is None


# --- the table against the wheels' own metadata, where wheels are at hand ------------

_CPU_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")


def _local_wheels(project: str) -> list[Path]:
    """Wheels of ``project`` in the file:// simple indexes pip is configured with here."""
    out: list[Path] = []
    for index in sorted(Path("/opt").glob("pypi*/simple")):
        page = index / project / "index.html"
        if page.is_file():
            for href in re.findall(r'href="([^"#]+)', page.read_text()):
                wheel = (page.parent / href).resolve()
                if wheel.is_file():
                    out.append(wheel)
    return out


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def test_cuda_torch_wheel_matches_table() -> None:
    wheels = [w for w in _local_wheels("torch") if "+" not in w.name]
    if not wheels:
        pytest.skip("no CUDA torch wheel in the local indexes")
    for wheel in wheels:
        meta = _metadata(wheel)
        version = str(meta["Version"])
        if minor(version) not in _RELEASES:
            continue
        default = pypi_default_variant(version)
        assert default is not None and default != "cpu"
        # torch pins the CUDA runtime (directly or through cuda-toolkit) at the variant's CUDA.
        cuda = cuda_of_requirements(meta.get_all("Requires-Dist") or [])
        assert cuda == cuda_version(default), (wheel.name, cuda, default)
        assert torch_build(version, default).requirement == f"torch=={version}"
        assert image_tag("1", torch_build(version, default)).endswith(f"-cuda{cuda}")


def test_cuda_runtime_wheel_matches_table() -> None:
    runtimes = _local_wheels("nvidia-cuda-runtime")
    if not runtimes:
        pytest.skip("no nvidia-cuda-runtime wheel in the local indexes")
    for wheel in runtimes:
        meta = _metadata(wheel)
        cuda = minor(str(meta["Version"]))
        # every CUDA the runtime wheels carry has a driver row, and libcudart's major agrees
        assert cuda in CUDA_DRIVERS, cuda
        with zipfile.ZipFile(wheel) as zf:
            libs = [n for n in zf.namelist() if re.search(r"/libcudart\.so\.\d+$", n)]
        assert libs and all(n.endswith(f".so.{cuda.split('.')[0]}") for n in libs), libs


def test_cpu_wheel_pins_no_cuda() -> None:
    if not _CPU_WHEEL.exists():
        pytest.skip(f"{_CPU_WHEEL} not present")
    meta = _metadata(_CPU_WHEEL)
    assert str(meta["Version"]).endswith("+cpu")
    assert cuda_of_requirements(meta.get_all("Requires-Dist") or []) is None
    assert not any("nvidia" in r for r in meta.get_all("Requires-Dist") or [])
