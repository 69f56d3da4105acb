"""Download the locked wheels into the content-addressed cache, checking every hash."""

from __future__ import annotations

from pathlib import Path

from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.deps.http import iter_url, make_client, with_retries
from torchslim.deps.lock import Lock, LockedWheel
from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import IntegrityError


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
                result[w.name] = _fetch_one(w, store, client, progress)
    return result


def _fetch_one(
    w: LockedWheel,
    store: BlobStore,
    client: object,
    progress: Progress | None,
) -> Path:
    import httpx

    assert isinstance(client, httpx.Client)
    total = [w.size or 0]

    def on_start(length: int | None) -> None:
        if length:
            total[0] = length

    def attempt() -> None:
        done = 0
        try:
            with store.writer(w.digest) as out:
                for chunk in iter_url(w.url, client, on_start):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(w.filename, done, total[0])
        except IntegrityError:
            raise IntegrityError(
                f"wheel {w.filename} from {w.url} does not match the lock's sha256:{w.sha256}; "
                "nothing was kept: check the index or mirror, or lock again if the wheel "
                "was replaced on purpose"
            ) from None

    with_retries(w.url, attempt, f"wheel {w.filename}")
    return store.path(w.digest)


__all__ = ["Progress", "fetch_wheels"]
