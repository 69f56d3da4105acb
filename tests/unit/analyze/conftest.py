from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from imagebuilder import Blob, Spec, write_oci

from torchslim.analyze import Analysis, analyze, open_image


@pytest.fixture
def analyze_layers(tmp_path: Path) -> Callable[..., Analysis]:
    """Write an OCI layout from layer blobs and analyze it."""
    counter = [0]

    def run(*layers: Blob, name: str = "app:v1", **cfg: object) -> Analysis:
        counter[0] += 1
        dest = write_oci(tmp_path / f"img{counter[0]}", Spec(list(layers), **cfg))  # type: ignore[arg-type]
        return analyze(open_image(f"oci:{dest}"), name=name)

    return run
