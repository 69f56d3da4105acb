"""The cache is not trusted by file name: every read checks the digest, a bad blob is evicted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from torchslim.cache import BlobStore
from torchslim.digests import split_digest
from torchslim.errors import IntegrityError


def _store(tmp_path: Path, warnings: list[str]) -> BlobStore:
    return BlobStore(tmp_path / "cache", warn=warnings.append)


def test_verify_evicts_a_blob_replaced_by_other_bytes(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path, warnings)
    digest = store.put_bytes(b"the real wheel")
    assert store.verify(digest) and warnings == []
    store.path(digest).write_bytes(b"another, valid-looking file")
    assert not store.verify(digest)
    assert not store.path(digest).exists()  # evicted: the caller fetches it again
    assert len(warnings) == 1 and digest in warnings[0] and "corrupt" in warnings[0]
    assert not store.verify(digest) and len(warnings) == 1  # absent is no warning


def test_verify_hashes_once_per_unchanged_file(tmp_path: Path) -> None:
    store = _store(tmp_path, [])
    digest = store.put_bytes(b"x" * 1000)
    calls: list[Path] = []
    import torchslim.cache as cache_mod

    real = cache_mod.sha256_file
    cache_mod.sha256_file = lambda p: calls.append(p) or real(p)  # type: ignore[func-returns-value]
    try:
        fresh = BlobStore(tmp_path / "cache")
        assert fresh.verify(digest) and fresh.verify(digest)
    finally:
        cache_mod.sha256_file = real
    assert len(calls) == 1


def test_open_checks_the_digest_as_it_streams_and_evicts(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path, warnings)
    digest = store.put_bytes(b"layer bytes" * 1000)
    with store.open(digest) as f:
        assert f.read() == b"layer bytes" * 1000
    data = bytearray(store.path(digest).read_bytes())
    data[5] ^= 0xFF
    store.path(digest).write_bytes(bytes(data))
    with (
        pytest.raises(IntegrityError, match="removed from the cache.*run the command again"),
        store.open(digest) as f,
    ):
        f.read()
    assert not store.path(digest).exists() and warnings


def test_read_bytes_and_put_file_do_not_trust_a_corrupt_blob(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path, warnings)
    src = tmp_path / "index"
    src.write_bytes(b"Packages index")
    digest = "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest()
    store.put_file(src, digest)
    store.path(digest).write_bytes(b"zlib garbage")
    with pytest.raises(IntegrityError, match="was corrupt"):
        store.read_bytes(digest)
    assert store.put_file(src, digest) == digest  # not "already there": fetched again
    assert store.read_bytes(digest) == b"Packages index"


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "../" * 20 + "etc/pa",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "md5:abc",
    ],
)
def test_a_digest_is_lowercase_hex_of_its_length_before_it_becomes_a_path(digest: str) -> None:
    with pytest.raises(IntegrityError, match="invalid digest"):
        split_digest(digest)
    with pytest.raises(IntegrityError):
        BlobStore(Path("/nonexistent")).path(digest)
