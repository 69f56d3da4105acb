from __future__ import annotations

from pathlib import Path

import pytest
from support.wheels import make_wheel

from torchslim.cache import BlobStore, sha256_file
from torchslim.deps.lock import Lock, LockedWheel
from torchslim.deps.pipconf import IndexSettings
from torchslim.deps.wheels import fetch_wheels
from torchslim.errors import IntegrityError, NetworkError


def _lock_for(wheel: Path, sha: str) -> Lock:
    w = LockedWheel("demo", "1.0", wheel.name, wheel.as_uri(), sha, wheel.stat().st_size)
    return Lock(packages=(w,))


def test_fetch_file_url_and_reuse_cache(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    sha = sha256_file(wheel).removeprefix("sha256:")
    store = BlobStore(tmp_path / "cache")
    seen: list[tuple[str, int, int]] = []
    got = fetch_wheels(_lock_for(wheel, sha), store, IndexSettings(), lambda *a: seen.append(a))
    assert got["demo"].read_bytes() == wheel.read_bytes()
    assert seen[-1] == (wheel.name, wheel.stat().st_size, wheel.stat().st_size)
    lock = _lock_for(wheel, sha)
    wheel.unlink()  # a cached hash is never fetched again
    assert fetch_wheels(lock, store, IndexSettings())["demo"] == got["demo"]


def test_corrupted_wheel_is_rejected_and_nothing_kept(tmp_path: Path) -> None:
    good = make_wheel(tmp_path)
    sha = sha256_file(good).removeprefix("sha256:")
    bad_dir = tmp_path / "mirror"
    bad_dir.mkdir()
    bad = bad_dir / good.name
    data = bytearray(good.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    store = BlobStore(tmp_path / "cache")
    with pytest.raises(IntegrityError) as exc:
        fetch_wheels(_lock_for(bad, sha), store, IndexSettings())
    msg = str(exc.value)
    assert good.name in msg and bad.as_uri() in msg and "\n" not in msg
    assert not store.has("sha256:" + sha)
    assert [p for p in store.root.iterdir()] == []  # no partial or wrong blob either


def test_missing_local_wheel_is_one_line_network_error(tmp_path: Path) -> None:
    missing = tmp_path / "demo-1.0-py3-none-any.whl"
    lock = Lock(packages=(LockedWheel("demo", "1.0", missing.name, missing.as_uri(), "0" * 64, 1),))
    with pytest.raises(NetworkError, match="does not exist.*run the build with --relock") as exc:
        fetch_wheels(lock, BlobStore(tmp_path / "cache"), IndexSettings())
    assert "\n" not in str(exc.value)


def test_a_cached_wheel_replaced_by_another_valid_wheel_is_evicted_and_fetched(
    tmp_path: Path,
) -> None:
    wheel = make_wheel(tmp_path)
    sha = sha256_file(wheel).removeprefix("sha256:")
    warnings: list[str] = []
    store = BlobStore(tmp_path / "cache", warn=warnings.append)
    lock = _lock_for(wheel, sha)
    path = fetch_wheels(lock, store, IndexSettings())["demo"]
    (tmp_path / "other").mkdir()
    impostor = make_wheel(tmp_path / "other", name="demo", version="6.6.6")
    path.write_bytes(impostor.read_bytes())  # a valid wheel, the wrong one
    got = fetch_wheels(lock, store, IndexSettings())["demo"]
    assert got.read_bytes() == wheel.read_bytes()
    assert len(warnings) == 1 and "sha256:" + sha in warnings[0]


def test_a_truncated_cached_wheel_is_fetched_again_not_a_zlib_error(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    sha = sha256_file(wheel).removeprefix("sha256:")
    store = BlobStore(tmp_path / "cache", warn=lambda _: None)
    lock = _lock_for(wheel, sha)
    path = fetch_wheels(lock, store, IndexSettings())["demo"]
    path.write_bytes(path.read_bytes()[: wheel.stat().st_size // 2])
    assert fetch_wheels(lock, store, IndexSettings())["demo"].read_bytes() == wheel.read_bytes()


def test_a_lock_from_another_machine_finds_the_wheel_in_find_links(tmp_path: Path) -> None:
    """The locked location is gone here; the same file (name and hash) is in find-links."""
    (tmp_path / "elsewhere").mkdir()
    made = make_wheel(tmp_path / "elsewhere")
    sha = sha256_file(made).removeprefix("sha256:")
    lock = _lock_for(made, sha)
    here = tmp_path / "wheels"
    here.mkdir()
    made.rename(here / made.name)
    store = BlobStore(tmp_path / "cache")
    got = fetch_wheels(lock, store, IndexSettings(find_links=(str(here),)))
    assert got["demo"].read_bytes() == (here / made.name).read_bytes()


def test_a_lock_from_another_machine_finds_the_wheel_in_an_index(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    made = make_wheel(tmp_path / "elsewhere")
    sha = sha256_file(made).removeprefix("sha256:")
    lock = _lock_for(made, sha)
    project = tmp_path / "simple" / "demo"
    project.mkdir(parents=True)
    made.rename(project / made.name)
    link = f'<a href="{made.name}#sha256={sha}">{made.name}</a>'
    (project / "index.html").write_text(f"<html><body>{link}</body></html>")
    index = (tmp_path / "simple").as_uri()
    got = fetch_wheels(lock, BlobStore(tmp_path / "cache"), IndexSettings(index_url=index))
    assert got["demo"].read_bytes() == (project / made.name).read_bytes()


def test_a_different_file_of_the_same_name_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    made = make_wheel(tmp_path / "elsewhere")
    lock = _lock_for(made, sha256_file(made).removeprefix("sha256:"))
    other = tmp_path / "wheels"
    other.mkdir()
    (other / made.name).write_bytes(made.read_bytes() + b"\0")  # same name, other bytes
    made.unlink()
    store = BlobStore(tmp_path / "cache")
    with pytest.raises(NetworkError, match="--relock") as exc:
        fetch_wheels(lock, store, IndexSettings(find_links=(str(other),)))
    assert "\n" not in str(exc.value) and list(store.root.iterdir()) == []
