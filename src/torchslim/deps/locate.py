"""Where else a locked wheel can be found: the configured find-links and indexes.

A lock records where each wheel was when it was made (often a ``file://`` path on that
machine). On another machine the same file — same name, same sha256 — usually sits in
that machine's find-links or index, so the lock stays valid: the bytes are what the lock
pins, wherever they come from.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator

import httpx
from packaging.utils import canonicalize_name

from torchslim.deps.http import local_path
from torchslim.deps.pipconf import IndexSettings

_HREF = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
PAGE_MAX = 32 << 20  # a simple-index page of a project with thousands of files


def _links(page: str, base: str) -> Iterator[tuple[str, str]]:
    """(filename, absolute URL without fragment) for every link of an HTML page."""
    for href in _HREF.findall(page):
        url = urllib.parse.urljoin(base, html.unescape(href)).split("#", 1)[0]
        yield urllib.parse.unquote(url.rsplit("/", 1)[-1]), url


def _read(url: str, client: httpx.Client) -> str | None:
    """A page's text (a local file, or over HTTP), or None when it is not there."""
    path = local_path(url)
    try:
        if path is not None:
            if path.is_dir():
                path = path / "index.html"
            return path.read_text(errors="replace") if path.is_file() else None
        resp = client.get(url, headers={"Accept": "text/html"})
        if resp.status_code != 200 or len(resp.content) > PAGE_MAX:
            return None
        return resp.text
    except (OSError, httpx.HTTPError):
        return None


def _find_links(filename: str, entry: str, client: httpx.Client) -> Iterator[str]:
    path = local_path(entry)
    if path is not None and path.is_dir():
        if (path / filename).is_file():
            yield (path / filename).resolve().as_uri()
        return
    page = _read(entry, client)
    if page is not None:
        yield from (url for name, url in _links(page, entry) if name == filename)


def _hashed_links(page: str, base: str) -> Iterator[tuple[str, str, str | None]]:
    """(filename, URL, sha256 from its ``#sha256=`` fragment) for every link of a page."""
    for href in _HREF.findall(page):
        url, _, fragment = urllib.parse.urljoin(base, html.unescape(href)).partition("#")
        sha = fragment[7:] if fragment.startswith("sha256=") else None
        yield urllib.parse.unquote(url.rsplit("/", 1)[-1]), url, sha


def _listed(entry: str, client: httpx.Client) -> Iterator[tuple[str, str, str | None]]:
    """Every file a find-links entry offers: a folder's files, or a page's links."""
    path = local_path(entry)
    if path is not None and path.is_dir():
        for file in sorted(path.iterdir()):
            if file.is_file():
                yield file.name, file.resolve().as_uri(), None
        return
    page = _read(entry, client)
    if page is not None:
        yield from _hashed_links(page, entry)


def project_files(
    project: str, settings: IndexSettings, client: httpx.Client
) -> Iterator[tuple[str, str, str | None]]:
    """(filename, URL, sha256 or None) of every file the find-links and indexes offer
    whose name may be ``project``'s (callers parse the name)."""
    for entry in settings.find_links:
        yield from _listed(entry, client)
    for index in settings.index_urls():
        page_url = f"{index.rstrip('/')}/{canonicalize_name(project)}/"
        page = _read(page_url, client)
        if page is not None:
            yield from _hashed_links(page, page_url)


def candidate_urls(
    filename: str, project: str, settings: IndexSettings, client: httpx.Client
) -> Iterator[str]:
    """URLs of files named ``filename`` in find-links, then in each index (PEP 503 pages)."""
    for entry in settings.find_links:
        yield from _find_links(filename, entry, client)
    for index in settings.index_urls():
        page_url = f"{index.rstrip('/')}/{canonicalize_name(project)}/"
        page = _read(page_url, client)
        if page is not None:
            yield from (url for name, url in _links(page, page_url) if name == filename)
