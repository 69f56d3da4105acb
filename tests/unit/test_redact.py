"""No secret in any message: what redact masks and what it keeps."""

from __future__ import annotations

import pytest

from torchslim.redact import quote, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("docker://bob:hunter2@registry.example/x:1", "hunter2"),
        ("--index-url https://user:s3cret@pypi.example/simple", "s3cret"),
        ("--extra-index-url=https://gh_tok3n@git.example/simple", "gh_tok3n"),
        ("https://h/simple?token=abc123&x=1", "abc123"),
        ("https://bucket/x.whl?X-Amz-Signature=deadbeef", "deadbeef"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        ("API_TOKEN=very-secret-value", "very-secret-value"),
        ("password: hunter2", "hunter2"),
        ("found ghp_abcdefghijklmnopqrstuvwxyz012345 in a file", "ghp_abcdefghij"),
        ("AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "MIIE"),
    ],
)
def test_secrets_are_masked(text: str, secret: str) -> None:
    shown = redact(text)
    assert secret not in shown and "***" in shown


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "ab" * 32,
        "registry r refused access as user 'bob' (UNAUTHORIZED: authentication required)",
        "key `name`: String should match pattern '^[a-z0-9][a-z0-9._-]*$'",
        "https://pypi.org/simple/torch/",
        "torch==2.13.0; python_version >= '3.11'",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_quote_redacts_and_cuts() -> None:
    assert quote("https://u:p@h/" + "x" * 500, limit=30) == repr(
        "https://u:***@h/" + "x" * 14 + "…"
    )
