"""Download the locked wheels into the content-addressed cache, checking every hash."""

from __future__ import annotations

from pathlib import Path

import httpx

from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.deps.http import iter_url, make_client, with_retries
from torchslim.deps.locate import candidate_urls
from torchslim.deps.lock import Lock, LockedWheel
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import IntegrityError, NetworkError


def fetch_wheels(
    lock: Lock,
    store: BlobStore,
    settings: IndexSettings,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Normalized name → cached wheel path. A cached wheel is hashed before it is used:
    one that does not match the lock is evicted (with the store's warning) and fetched
    again; a download whose sha256 differs from the lock raises IntegrityError and
    leaves nothing behind."""
    result: dict[str, Path] = {}
    todo = []
    for w in lock.packages:
        if store.verify(w.digest):
            result[w.name] = store.path(w.digest)
        else:
            todo.append(w)
    if todo:
        with make_client(settings) as client:
            for w in todo:
                result[w.name] = _fetch_one(w, store, client, settings, progress)
    return result


def _fetch_one(
    w: LockedWheel,
    store: BlobStore,
    client: httpx.Client,
    settings: IndexSettings,
    progress: Progress | None,
) -> Path:
    """The wheel from its locked location, else from wherever the configured find-links and
    indexes serve the same file (same name, same sha256): a lock made on another machine."""
    try:
        _download(w, w.url, store, client, progress)
        return store.path(w.digest)
    except NetworkError as first:
        reason = str(first)
    for url in candidate_urls(w.filename, w.name, settings, client):
        if url == w.url:
            continue
        try:
            _download(w, url, store, client, progress)
            return store.path(w.digest)
        except (NetworkError, IntegrityError):
            continue
    raise NetworkError(
        f"{reason}; no find-links or index in your pip config has {w.filename} with the "
        "locked sha256 either: the lock was made elsewhere, run the build with --relock"
    )


def _download(
    w: LockedWheel, url: str, store: BlobStore, client: httpx.Client, progress: Progress | None
) -> None:
    total = [w.size or 0]

    def on_start(length: int | None) -> None:
        if length:
            total[0] = length

    def attempt() -> None:
        done = 0
        try:
            with store.writer(w.digest) as out:
                for chunk in iter_url(url, client, on_start):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(w.filename, done, total[0])
        except IntegrityError:
            raise IntegrityError(
                f"wheel {w.filename} from {url} does not match the lock's sha256:{w.sha256}; "
                "nothing was kept: check the index or mirror, or lock again if the wheel "
                "was replaced on purpose"
            ) from None

    with_retries(url, attempt, f"wheel {w.filename}")


__all__ = ["Progress", "fetch_wheels"]
