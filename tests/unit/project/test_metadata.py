"""The image's license and description: the config's, else pyproject's [project]."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchslim.config import parse_config
from torchslim.errors import ConfigError
from torchslim.project.metadata import ImageMetadata, image_metadata

BASE = {"name": "svc", "torch": "2.13.0", "cmd": ["x"]}


def _meta(root: Path, pyproject: str | None = None, **keys: object) -> ImageMetadata:
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    cfg = parse_config({**BASE, **keys}, file=root / "torchslim.toml", root=root)
    return image_metadata(cfg)


def test_pep_639_license_and_description_from_pyproject(tmp_path: Path) -> None:
    meta = _meta(
        tmp_path,
        '[project]\nlicense = "Apache-2.0 OR MIT"\ndescription = "  Classifies\\n  images. "\n',
    )
    assert meta == ImageMetadata("Apache-2.0 OR MIT", "Classifies images.")


def test_pep_621_license_text_and_file(tmp_path: Path) -> None:
    assert _meta(tmp_path, '[project]\nlicense = {text = "BSD-3-Clause"}\n').licenses == (
        "BSD-3-Clause"
    )
    # A license file names no expression: nothing is guessed from it.
    assert _meta(tmp_path, '[project]\nlicense = {file = "LICENSE"}\n') == ImageMetadata()


def test_the_config_wins_and_works_without_pyproject(tmp_path: Path) -> None:
    pyproject = '[project]\nlicense = "MIT"\ndescription = "from pyproject"\n'
    meta = _meta(tmp_path, pyproject, license="Apache-2.0")
    assert meta == ImageMetadata("Apache-2.0", "from pyproject")
    other = tmp_path / "bare"
    other.mkdir()
    assert _meta(other, None, description="A service.") == ImageMetadata(None, "A service.")


def test_empty_values_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key `license`"):
        _meta(tmp_path, None, license="")
