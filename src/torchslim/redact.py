"""No secret in any message: credentials in URLs, references, option lines and headers.

Messages quote what the user gave (a requirement line, an index URL, an image
reference) so the user can find it; ``redact`` keeps that and masks the secret part.
The CLI's error handler applies it to every message as a last line of defence; the
places that quote such text apply it where they build the message.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host, scheme://token@host (git, pip, docker://)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/@\s?#'\"`]+)@")
# ?token=…, &X-Amz-Signature=…: query parameters that carry credentials
_QUERY = re.compile(
    r"(?P<key>[?&;](?:access_token|refresh_token|id_token|token|auth|password|passwd|pwd|"
    r"secret|client_secret|api[_-]?key|key|sig|signature|code|credential|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
    r"x-goog-credential)=)[^&#\s'\"`]+",
    re.IGNORECASE,
)
# Authorization: Bearer …, Basic …; "token abc" as a header value
_HEADER = re.compile(
    r"(?P<key>\b(?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer|basic|token)?\s*)"
    r"[^\s'\"`,;]+",
    re.IGNORECASE,
)
_SCHEME_TOKEN = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}")
# NAME=value / NAME: value where NAME says it is a secret (an .env line, a config line)
_ASSIGNMENT = re.compile(
    r"(?P<key>\b(?:[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*|auth|credentials?)\s*[:=]\s*['\"]?)"
    r"(?!\*\*\*)[^\s'\"`,;&]+",
    re.IGNORECASE,
)
# Token formats that are secrets on sight (GitHub, GitLab, Slack, AWS, PyPI, OpenAI, HF).
_KNOWN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|"
    r"pypi-[A-Za-z0-9_-]{32,}|sk-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{20,})\b"
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)


def _userinfo(m: re.Match[str]) -> str:
    user, sep, _ = m.group("info").partition(":")
    # user:password keeps the user (it helps); a lone token in the user part is masked.
    return f"{m.group('scheme')}{user}:{MASK}@" if sep else f"{m.group('scheme')}{MASK}@"


def redact(text: str) -> str:
    """``text`` with credentials masked (``***``); everything else as it was."""
    if not text:
        return text
    text = _PRIVATE_KEY.sub(f"-----{MASK} PRIVATE KEY-----", text)
    text = _USERINFO.sub(_userinfo, text)
    text = _QUERY.sub(lambda m: m.group("key") + MASK, text)
    text = _HEADER.sub(lambda m: m.group("key") + MASK, text)
    text = _SCHEME_TOKEN.sub(lambda m: m.group("key") + MASK, text)
    text = _ASSIGNMENT.sub(lambda m: m.group("key") + MASK, text)
    return _KNOWN.sub(MASK, text)


def quote(text: str, limit: int = 120) -> str:
    """``repr`` of user text for a message: redacted and cut to ``limit`` characters."""
    shown = redact(text)
    if len(shown) > limit:
        shown = shown[:limit] + "…"
    return repr(shown)


__all__ = ["MASK", "quote", "redact"]
