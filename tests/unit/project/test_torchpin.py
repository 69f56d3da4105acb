"""Torch pins in the project against torch/variant in the config: one line naming both."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import write_tree

from torchslim.errors import ConfigError
from torchslim.project import check_torch_pin, find_requirements, torch_pins
from torchslim.project.torchpin import choose_torch, newest_known_torch, variant_of_index
from torchslim.torchmeta import shipped_variants


def test_the_issues_conflict_is_one_line_naming_both_pins(tmp_path: Path) -> None:
    write_tree(tmp_path, {"requirements.txt": "fastapi\ntorch==1.7.1\n"})
    reqs = find_requirements(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_torch_pin(reqs, "2.13.0", "cpu")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        'torch==1.7.1 in requirements.txt:2 conflicts with torch = "2.13.0" (torchslim.toml: torch)'
    )
    assert "--torch" in msg


def test_agreeing_pins_ranges_local_tags_and_other_platforms(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "requirements.txt": (
                "torch>=2.5,<3\n"
                "torch==2.13.0+cpu ; sys_platform == 'linux'\n"
                "torch==2.2.2 ; sys_platform == 'darwin'\n"  # not this image's platform
            )
        },
    )
    reqs = find_requirements(tmp_path)
    check_torch_pin(reqs, "2.13.0", "cpu")
    check_torch_pin(reqs, "2.13", "cpu")  # "2.13" is 2.13.0
    with pytest.raises(
        ConfigError, match=r'is the cpu build, but variant = "cu130" \(torchslim.toml: variant\)'
    ):
        check_torch_pin(reqs, "2.13.0", "cu130")
    with pytest.raises(ConfigError, match=r"torch>=2.5,<3 in requirements.txt:1 conflicts"):
        check_torch_pin(reqs, "3.0.0", "cpu")
    # What the command line overrides is not checked: the pins follow it for that build.
    check_torch_pin(reqs, "3.0.0", "cu130", check_version=False, check_variant=False)


def test_pins_give_version_and_variant(tmp_path: Path) -> None:
    write_tree(tmp_path, {"requirements.txt": "torch==2.14.1+cu130\n"})
    pins = torch_pins(find_requirements(tmp_path).prod)
    assert (pins[0].version, pins[0].variant) == ("2.14.1", "cu130")
    assert choose_torch(pins) == ("2.14.1", "cu130")
    write_tree(tmp_path, {"requirements.txt": "torch>=2.9,<2.12\n"})
    assert choose_torch(torch_pins(find_requirements(tmp_path).prod)) == ("2.11.0", None)
    assert variant_of_index("https://download.pytorch.org/whl/cu128") == "cu128"
    assert variant_of_index("https://download.pytorch.org/whl/nightly/cpu") == "cpu"
    assert variant_of_index("https://pypi.org/simple") is None
    newest = newest_known_torch()
    minor = int(newest.split(".")[1])
    assert newest.endswith(".0") and shipped_variants(newest)
    assert not shipped_variants(f"2.{minor + 1}")
