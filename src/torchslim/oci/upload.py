"""Sending blobs to a registry: HEAD, cross-repository mount, or upload (monolithic or chunked).

A dropped upload is retried from a fresh session (or resumed where the registry kept
the bytes); a blob that did arrive is not sent again. What happened to each blob is
recorded in the :class:`PushResult`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlencode, urljoin

import httpx

from torchslim.cache import CHUNK
from torchslim.config import Progress
from torchslim.errors import BuildError, IntegrityError, NetworkError
from torchslim.oci.blobio import sha256_bytes
from torchslim.oci.distribution import (
    Body,
    RegistryClient,
    TransportFailed,
    push_scope,
    registry_errors,
)

log = logging.getLogger(__name__)

CHUNKED_THRESHOLD = 64 << 20  # blobs above this go up in PATCH chunks
CHUNK_SIZE = 32 << 20


@dataclass
class PushResult:
    """What one push sent: blobs as ``(digest, size)``, and the digest the tag now names."""

    reference: str = ""
    uploaded: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    mounted: list[tuple[str, int]] = field(default_factory=list)
    manifest_digest: str = ""

    @property
    def bytes_uploaded(self) -> int:
        return sum(size for _, size in self.uploaded)

    @property
    def bytes_skipped(self) -> int:
        return sum(size for _, size in self.skipped) + sum(size for _, size in self.mounted)


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    open: Callable[[], BinaryIO]


class BlobPusher:
    def __init__(
        self,
        client: RegistryClient,
        repo: str,
        mount_from: Sequence[str],
        progress: Progress | None,
        chunked_threshold: int,
        chunk_size: int,
        result: PushResult,
    ) -> None:
        self.cl = client
        self.repo = repo
        self.mount_from = [m for m in dict.fromkeys(mount_from) if m != repo]
        self.scope = push_scope(repo, self.mount_from)
        self.progress = progress
        self.chunked_threshold = chunked_threshold
        self.chunk_size = chunk_size
        self.result = result
        self.done: set[str] = set()

    def push_blob(self, blob: Blob) -> None:
        if blob.digest in self.done:
            return
        self.done.add(blob.digest)
        entry = (blob.digest, blob.size)
        if self.cl.has_blob(self.repo, blob.digest, self.scope):
            self.result.skipped.append(entry)
            return
        location: str | None = None
        for i, source in enumerate(self.mount_from):
            query = urlencode({"mount": blob.digest, "from": source})
            resp = self.cl.send("POST", f"/v2/{self.repo}/blobs/uploads/?{query}", scope=self.scope)
            if resp.status_code == 201:
                self.result.mounted.append(entry)
                return
            if resp.status_code == 202:  # not mountable: the registry opened an upload instead
                location = self._location(resp)
                if i + 1 < len(self.mount_from):  # try the next source; drop this session
                    with contextlib.suppress(NetworkError):
                        self.cl.send("DELETE", location, scope=self.scope, retry=False)
                    location = None
        self._upload(blob, location)
        self.result.uploaded.append(entry)

    def _location(self, resp: httpx.Response) -> str:
        loc = resp.headers.get("location")
        if not loc:
            raise NetworkError(
                f"registry {self.cl.registry} started an upload without a Location header; "
                "it does not follow the distribution API"
            )
        return urljoin(str(resp.request.url), str(loc))

    def _start(self) -> str:
        resp = self.cl.send("POST", f"/v2/{self.repo}/blobs/uploads/", scope=self.scope)
        if resp.status_code != 202:
            raise NetworkError(
                f"registry {self.cl.registry} refused to start an upload to {self.repo} "
                f"({registry_errors(resp)}); check your push rights"
            )
        return self._location(resp)

    def _upload(self, blob: Blob, location: str | None) -> None:
        """Monolithic or chunked upload; on a drop, resume (chunked) or restart, with backoff."""
        cursor = _Cursor(blob, self.progress)
        try:
            self._upload_loop(blob, cursor, location)
        finally:
            cursor.close()

    def _upload_loop(self, blob: Blob, cursor: _Cursor, location: str | None) -> None:
        attempt = 0
        offset = 0
        while True:
            try:
                if location is None:
                    location, offset = self._start(), 0
                if blob.size > self.chunked_threshold:
                    self._chunked(blob, cursor, location, offset)
                else:
                    self._monolithic(blob, cursor, location)
                return
            except _UploadFailed as exc:
                attempt += 1
                if attempt > self.cl.retries:
                    raise NetworkError(
                        f"upload of {blob.digest} to {self.cl.registry}/{self.repo} failed "
                        f"after {attempt} attempt(s): {exc}; re-run the push, blobs that "
                        "arrived are skipped"
                    ) from None
                log.warning("upload of %s: %s; retrying", blob.digest, exc)
                self.cl.backoff(attempt - 1, None)
                # The bytes may all have arrived before the connection dropped.
                if self.cl.has_blob(self.repo, blob.digest, self.scope):
                    return
                location, offset = self._resume_point(exc.location)

    def _resume_point(self, location: str | None) -> tuple[str | None, int]:
        """Ask the registry how much of an interrupted upload it kept; None: start over."""
        if location is None:
            return None, 0
        try:
            resp = self.cl.send("GET", location, scope=self.scope, retry=False)
        except TransportFailed:
            return None, 0
        rng = resp.headers.get("range", "")
        if resp.status_code == 204 and (m := re.fullmatch(r"0-(\d+)", rng)):
            return self._location(resp), int(m.group(1)) + 1
        if resp.status_code == 204:
            return self._location(resp), 0
        return None, 0

    def _send_upload(
        self, method: str, url: str, headers: dict[str, str], body: Body, *, resumable: bool
    ) -> httpx.Response:
        try:
            resp = self.cl.send(
                method, url, scope=self.scope, headers=headers, body=body, retry=False
            )
        except TransportFailed as exc:
            raise _UploadFailed(
                f"{exc.reason} during {method}", url if resumable else None
            ) from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _UploadFailed(f"HTTP {resp.status_code} from {method}", None)
        return resp

    def _monolithic(self, blob: Blob, cursor: _Cursor, location: str) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        url = _with_query(location, digest=blob.digest)
        resp = self._send_upload(
            "PUT", url, headers, lambda: cursor.read_range(0, blob.size), resumable=False
        )
        self._finished(blob, resp)

    def _chunked(self, blob: Blob, cursor: _Cursor, location: str, offset: int) -> None:
        while offset < blob.size:
            length = min(self.chunk_size, blob.size - offset)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(length),
                "Content-Range": f"{offset}-{offset + length - 1}",
            }
            resp = self._send_upload(
                "PATCH",
                location,
                headers,
                _chunk_body(cursor, offset, length),
                resumable=True,
            )
            if resp.status_code != 202:
                raise _UploadFailed(f"PATCH answered {registry_errors(resp)}", None)
            location = self._location(resp)
            rng = re.fullmatch(r"0-(\d+)", resp.headers.get("range", ""))
            offset = int(rng.group(1)) + 1 if rng else offset + length
        url = _with_query(location, digest=blob.digest)
        resp = self._send_upload("PUT", url, {"Content-Length": "0"}, b"", resumable=True)
        self._finished(blob, resp)

    def _finished(self, blob: Blob, resp: httpx.Response) -> None:
        if resp.status_code != 201:
            text = registry_errors(resp)
            if "DIGEST_INVALID" in text or "BLOB_UPLOAD_INVALID" in text:
                raise IntegrityError(
                    f"registry {self.cl.registry} rejected blob {blob.digest} ({text}); "
                    "the local blob is corrupt, rebuild the image"
                )
            raise NetworkError(
                f"registry {self.cl.registry} refused blob {blob.digest} ({text}); retry later"
            )
        reported = resp.headers.get("docker-content-digest")
        if reported and reported != blob.digest:
            raise IntegrityError(
                f"registry {self.cl.registry} stored blob {blob.digest} as {reported}; the bytes "
                "changed in transit, retry the push"
            )

    def put_manifest(self, ident: str, data: bytes, media_type: str) -> str:
        digest = sha256_bytes(data)
        resp = self.cl.send(
            "PUT",
            f"/v2/{self.repo}/manifests/{ident}",
            scope=self.scope,
            headers={"Content-Type": media_type},
            body=data,
        )
        if resp.status_code not in (200, 201):
            raise BuildError(
                f"registry {self.cl.registry} rejected the manifest for {self.repo}:{ident} "
                f"({registry_errors(resp)}); nothing was tagged"
            )
        reported = resp.headers.get("docker-content-digest")
        if reported and reported != digest:
            raise IntegrityError(
                f"registry {self.cl.registry} stored manifest {digest} as {reported}; it "
                "rewrote the manifest, push to a registry that keeps bytes as sent"
            )
        return digest


def _chunk_body(cursor: _Cursor, start: int, length: int) -> Callable[[], Iterator[bytes]]:
    return lambda: cursor.read_range(start, length)


class _Cursor:
    """One open read of a blob shared by its chunks: a big blob is read once, not once per chunk.

    A range that does not start where the last one stopped (a retry, or a
    registry that kept fewer bytes) reopens the blob and skips ahead.
    """

    def __init__(self, blob: Blob, progress: Progress | None) -> None:
        self.blob = blob
        self.progress = progress
        self._f: BinaryIO | None = None
        self.pos = 0

    def _read(self, n: int) -> bytes:
        assert self._f is not None
        data = self._f.read(n)
        if not data:
            raise IntegrityError(
                f"blob {self.blob.digest} ends after {self.pos} of its {self.blob.size} bytes; "
                "the image is corrupt, rebuild it"
            )
        self.pos += len(data)
        return data

    def _seek(self, start: int) -> None:
        if self._f is None or self.pos > start:
            self.close()
            self._f = self.blob.open()
            self.pos = 0
        while self.pos < start:
            self._read(min(CHUNK, start - self.pos))

    def read_range(self, start: int, length: int) -> Iterator[bytes]:
        self._seek(start)
        end = start + length
        while self.pos < end:
            yield self._read(min(CHUNK, end - self.pos))
            if self.progress is not None:
                self.progress(self.blob.digest, self.pos, self.blob.size)
        if self.pos == self.blob.size and self._f is not None:
            self._f.read(1)  # to EOF, so a verifying stream checks the digest now

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class _UploadFailed(Exception):
    """A retryable upload failure; ``location`` is where the upload might resume."""

    def __init__(self, why: str, location: str | None) -> None:
        super().__init__(why)
        self.location = location


def _with_query(url: str, **params: str) -> str:
    return str(httpx.URL(url).copy_merge_params(params))
