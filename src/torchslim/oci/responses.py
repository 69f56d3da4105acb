"""Reading what a registry answers: bodies capped before they are held, error arrays as text."""

from __future__ import annotations

import json

import httpx

from torchslim.digests import CHUNK
from torchslim.errors import IntegrityError


def one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def read_capped_response(resp: httpx.Response, cap: int, what: str) -> bytes:
    """The body of a streamed response, refused past ``cap`` bytes (a manifest, a config)."""
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise IntegrityError(f"{what} is {length} bytes, over the {cap >> 20} MiB limit")
    body = bytearray()
    for chunk in resp.iter_bytes(CHUNK):
        body += chunk
        if len(body) > cap:
            raise IntegrityError(f"{what} is larger than {cap >> 20} MiB; refusing to read it")
    return bytes(body)


def registry_errors(resp: httpx.Response, body: bytes | None = None) -> str:
    """The registry's ``errors`` array as ``CODE: message`` (never headers, never tokens)."""
    try:
        data = json.loads(body) if body is not None else resp.json()
        errs = data.get("errors") or []
        parts = [
            f"{e.get('code', '?')}: {e.get('message', '')}" for e in errs if isinstance(e, dict)
        ]
        if parts:
            return one_line("; ".join(parts))
    except (ValueError, AttributeError, TypeError, RecursionError, httpx.ResponseNotRead):
        pass
    return f"HTTP {resp.status_code}"
