"""Fetch one URL (https, http, file:// or a plain path) into a verified sink, with retries.

Shared by wheel download and sdist fetching so both trust the same CA bundle and
give the same one-line errors.
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from torchslim.deps.pipconf import IndexSettings
from torchslim.errors import NetworkError

CHUNK = 1 << 20
RETRIES = 3
BACKOFF_S = 0.5


def local_path(url: str) -> Path | None:
    """The file behind a ``file://`` URL or plain path; None for remote URLs."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "":
        return Path(url)
    return None


def url_filename(url: str) -> str:
    """Last path segment of a URL, unquoted (``torch-2.13.0%2Bcpu-…`` → ``torch-2.13.0+cpu-…``)."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def make_client(settings: IndexSettings) -> httpx.Client:
    """An HTTP client that trusts what pip would trust: ``cert``, else the system bundle."""
    cafile = settings.ca_bundle()
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    return httpx.Client(verify=ctx, follow_redirects=True, timeout=httpx.Timeout(60.0))


def iter_url(
    url: str,
    client: httpx.Client,
    on_start: Callable[[int | None], None] | None = None,
) -> Iterator[bytes]:
    """Stream one attempt's bytes; raises httpx/OS errors to the retry loop."""
    path = local_path(url)
    if path is not None:
        if on_start:
            on_start(path.stat().st_size)
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        return
    with client.stream("GET", url) as resp:
        resp.raise_for_status()
        length = resp.headers.get("content-length")
        if on_start:
            on_start(int(length) if length and length.isdigit() else None)
        yield from resp.iter_bytes(CHUNK)


def with_retries(url: str, attempt: Callable[[], None], what: str) -> None:
    """Run ``attempt`` (which writes a whole download) up to RETRIES times on connection
    errors; an HTTP 4xx or a missing local file is final."""
    last = ""
    for n in range(RETRIES):
        try:
            attempt()
            return
        except FileNotFoundError:
            raise NetworkError(
                f"{what}: {url} does not exist; check find-links in your pip config"
            ) from None
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code < 500 or n == RETRIES - 1:
                raise NetworkError(
                    f"{what}: {url} answered HTTP {code}; check the index in your pip config "
                    "or PIP_INDEX_URL"
                ) from None
            last = f"HTTP {code}"
        except (httpx.TransportError, OSError) as exc:
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        time.sleep(BACKOFF_S * (2**n))
    raise NetworkError(
        f"{what}: cannot download {url} after {RETRIES} tries ({last}); check the network, "
        "your pip config (index-url, cert) or PIP_INDEX_URL"
    )
