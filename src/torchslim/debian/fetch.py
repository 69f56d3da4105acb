"""HTTP downloads from the mirror into the content-addressed store."""

from __future__ import annotations

import httpx

from torchslim.cache import BlobStore
from torchslim.config import Progress
from torchslim.debian.mirrors import host_mirrors
from torchslim.errors import IntegrityError, NetworkError

TIMEOUT = httpx.Timeout(30.0, connect=15.0)


def _network_error(mirror: str, url: str, why: str) -> NetworkError:
    offer = [m for m in host_mirrors() if m != mirror.rstrip("/")]
    hint = f" (mirrors on this host: {', '.join(offer)})" if offer else ""
    return NetworkError(
        f"cannot fetch {url} from Debian mirror {mirror}: {why}; set `mirror` in "
        f"torchslim.toml or pass --mirror{hint}"
    )


class Fetcher:
    """One HTTP client for a mirror; errors become NetworkError naming the mirror."""

    def __init__(self, mirror: str, client: httpx.Client | None = None) -> None:
        self.mirror = mirror.rstrip("/")
        self._client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return f"{self.mirror}/{path.lstrip('/')}"

    def get_bytes(self, path: str) -> bytes | None:
        """Small file (a release file); ``None`` on 404 so callers can try another name."""
        url = self.url(path)
        try:
            r = self._client.get(url)
        except httpx.HTTPError as e:
            raise _network_error(self.mirror, url, str(e) or type(e).__name__) from e
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise _network_error(self.mirror, url, f"HTTP {r.status_code}")
        return r.content

    def to_store(
        self,
        path: str,
        store: BlobStore,
        expected: str,
        size: int = 0,
        progress: Progress | None = None,
    ) -> str:
        """Stream ``path`` into ``store``, verified against ``expected`` (``sha256:<hex>``)."""
        if store.verify(expected):
            return expected
        url = self.url(path)
        try:
            with self._client.stream("GET", url) as r:
                if r.status_code != 200:
                    raise _network_error(self.mirror, url, f"HTTP {r.status_code}")
                with store.writer(expected) as w:
                    for chunk in r.iter_bytes(1 << 20):
                        w.write(chunk)
                        if progress:
                            progress(path.rsplit("/", 1)[-1], w.size, size)
        except httpx.HTTPError as e:
            raise _network_error(self.mirror, url, str(e) or type(e).__name__) from e
        except IntegrityError as e:
            raise IntegrityError(
                f"{url} does not match its signed sha256 ({expected}); nothing was kept, "
                "retry or use another `mirror`"
            ) from e
        return expected
