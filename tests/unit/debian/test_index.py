"""The signed release file as fetched: its digest and URL are what provenance names."""

from __future__ import annotations

import hashlib

import pytest

from torchslim.debian import DEFAULT_MIRROR
from torchslim.debian.fetch import Fetcher
from torchslim.debian.index import fetch_release


@pytest.mark.network
def test_fetch_release_records_where_from_and_the_digest_of_the_signed_bytes() -> None:
    with Fetcher(DEFAULT_MIRROR) as fetcher:
        release = fetch_release(fetcher, "bookworm")
        data = fetcher.get_bytes("dists/bookworm/InRelease")
    assert data is not None and data.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    assert release.url == f"{DEFAULT_MIRROR}/dists/bookworm/InRelease"
    assert release.sha256 == "sha256:" + hashlib.sha256(data).hexdigest()
    assert release.codename == "bookworm"
