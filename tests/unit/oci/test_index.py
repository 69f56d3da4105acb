"""The one index writer: platform entries and the annotations all platforms share."""

from __future__ import annotations

import json

import pytest
from support.registry import ImageMaker

from torchslim.errors import BuildError
from torchslim.oci.index import common_annotations, image_index
from torchslim.oci.mutate import with_annotations

BASE = "org.opencontainers.image.base."


def test_the_index_carries_what_every_platform_manifest_says(make_image: ImageMaker) -> None:
    amd, arm = make_image({"bin/app": 100}), make_image({"bin/app": 100}, arch="arm64")
    marked = [
        with_annotations(amd, {BASE + "name": "b", BASE + "digest": "sha256:1"}),
        with_annotations(arm, {BASE + "name": "b", BASE + "digest": "sha256:2"}),
    ]
    index = json.loads(image_index(marked))
    assert index["annotations"] == {BASE + "name": "b"}  # the digests differ per platform
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert common_annotations(marked[:1]) == {BASE + "name": "b", BASE + "digest": "sha256:1"}
    assert "annotations" not in json.loads(image_index([amd, arm]))
    with pytest.raises(BuildError, match="two images for linux/amd64"):
        image_index([marked[0], marked[0]])
