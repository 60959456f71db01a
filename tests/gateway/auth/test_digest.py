"""Content-Digest (RFC 9530) creation and checking."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.auth import DigestMismatchError, content_digest, verify_content_digest

# RFC 9530 section 2: the sha-512 Content-Digest of the example content
# '{"hello": "world"}' followed by a line feed.
RFC9530_BODY = b'{"hello": "world"}\n'
RFC9530_SHA512 = (
    "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCs"
    "yRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:"
)


def test_content_digest_is_an_sf_dictionary_of_the_sha256() -> None:
    body = b'{"a": 1}'
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert content_digest(body) == f"sha-256=:{expected}:"
    verify_content_digest(content_digest(body), body)


def test_rfc9530_example_verifies() -> None:
    assert content_digest(RFC9530_BODY, "sha-512") == RFC9530_SHA512
    verify_content_digest(RFC9530_SHA512, RFC9530_BODY, required="sha-512")
    with pytest.raises(DigestMismatchError):
        verify_content_digest(RFC9530_SHA512, RFC9530_BODY[:-1], required="sha-512")


def test_every_known_digest_present_must_match() -> None:
    body = b"payload"
    both = f"{content_digest(body)}, {content_digest(b'other', 'sha-512')}"
    with pytest.raises(DigestMismatchError, match="sha-512"):
        verify_content_digest(both, body)
    ignored = f"{content_digest(body)}, md5=:AAAA:, unixsum=12"
    verify_content_digest(ignored, body)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "no Content-Digest"),
        ("sha-256", "byte sequence"),
        ("sha-256=12", "byte sequence"),
        ("sha-256=:not base64!:", "structured-field"),
        ("SHA-256=:AAAA:", "structured-field"),
        (RFC9530_SHA512, "no sha-256 entry"),
        ("sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":", "does not match"),
    ],
)
def test_bad_digests_are_refused(value: str | None, message: str) -> None:
    with pytest.raises(DigestMismatchError, match=message) as caught:
        verify_content_digest(value, b"body")
    assert caught.value.code == "digest_mismatch"
