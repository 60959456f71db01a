"""Signature base construction (RFC 9421 section 2.5) against the RFC's own examples.

How the vectors were derived: the expected strings below are the signature
bases printed in RFC 9421 Appendix B.2.1, B.2.3 and B.2.6, with the RFC 8792
'\\' line folding undone (each continuation line appended to the previous one
without its leading whitespace). They are computed over the RFC's
"test-request" (Appendix B.2)::

    POST /foo?param=Value&Pet=dog HTTP/1.1
    Host: example.com
    Date: Tue, 20 Apr 2021 02:07:55 GMT
    Content-Type: application/json
    Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIi\\
      Yllu7BNNyealdVLvRwEmTHWXvJwew==:
    Content-Length: 18

    {"hello": "world"}

B.2.2 (``@query-param``) and B.2.4/B.2.5 are not reproduced as bases:
``@query-param`` and response components (``@status``) are not supported,
and B.2.5's key is an HMAC secret. B.2.4's published ECDSA signature is
instead used in ``test_ecdsa.py`` to check the raw ``r || s`` decoding.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.auth import HttpRequest, SignatureInvalidError, component_value, signature_base
from gateway.auth.signature_base import covered_components, parse_inner_list

RFC_SHA512 = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX"
    "+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
TEST_REQUEST = HttpRequest.build(
    "POST",
    "https://example.com/foo?param=Value&Pet=dog",
    [
        ("Host", "example.com"),
        ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("Content-Type", "application/json"),
        ("Content-Digest", RFC_SHA512),
        ("Content-Length", "18"),
    ],
    b'{"hello": "world"}',
)


def test_the_rfc_test_request_digest_is_the_body_sha512() -> None:
    digest = base64.b64encode(hashlib.sha512(TEST_REQUEST.body).digest()).decode()
    assert f"sha-512=:{digest}:" == RFC_SHA512


def test_rfc9421_b21_minimal_signature_base() -> None:
    inner = parse_inner_list(
        '();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"'
    )
    assert signature_base(TEST_REQUEST, inner) == (
        b'"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
        b';nonce="b3k2pp5k7z-50gnwp.yemd"'
    )


def test_rfc9421_b23_full_coverage_signature_base() -> None:
    inner = parse_inner_list(
        '("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" '
        '"content-length");created=1618884473;keyid="test-key-rsa-pss"'
    )
    expected = "\n".join(
        [
            '"date": Tue, 20 Apr 2021 02:07:55 GMT',
            '"@method": POST',
            '"@path": /foo',
            '"@query": ?param=Value&Pet=dog',
            '"@authority": example.com',
            '"content-type": application/json',
            f'"content-digest": {RFC_SHA512}',
            '"content-length": 18',
            '"@signature-params": ("date" "@method" "@path" "@query" "@authority" '
            '"content-type" "content-digest" "content-length");created=1618884473'
            ';keyid="test-key-rsa-pss"',
        ]
    ).encode()
    assert signature_base(TEST_REQUEST, inner) == expected


def test_rfc9421_b26_signature_base() -> None:
    # Extra whitespace in the header value must not change the base: it is re-serialised.
    inner = parse_inner_list(
        '("date"   "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    expected = (
        b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        b'"@method": POST\n'
        b'"@path": /foo\n'
        b'"@authority": example.com\n'
        b'"content-type": application/json\n'
        b'"content-length": 18\n'
        b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
        b'"content-length");created=1618884473;keyid="test-key-ed25519"'
    )
    assert signature_base(TEST_REQUEST, inner) == expected


@pytest.mark.parametrize(
    ("url", "component", "value"),
    [
        (
            "https://example.com/foo?param=Value&Pet=dog",
            "@target-uri",
            "https://example.com/foo?param=Value&Pet=dog",
        ),
        ("https://Example.COM:443/foo", "@authority", "example.com"),
        ("http://example.com:8080/foo", "@authority", "example.com:8080"),
        ("HTTPS://example.com/", "@scheme", "https"),
        ("https://example.com", "@path", "/"),
        ("https://example.com/a%20b/c", "@path", "/a%20b/c"),
        ("https://example.com/foo", "@query", "?"),
        ("https://example.com/foo?", "@query", "?"),
        ("https://example.com/foo?a=%2F&b", "@query", "?a=%2F&b"),
        ("https://example.com/foo?x=1", "@request-target", "/foo?x=1"),
    ],
)
def test_derived_components(url: str, component: str, value: str) -> None:
    assert component_value(HttpRequest.build("GET", url), component) == value


def test_header_lines_are_trimmed_and_combined_in_order() -> None:
    request = HttpRequest.build(
        "GET",
        "https://example.com/",
        [("X-Thing", "  one "), ("Accept", "a"), ("x-thing", "two\t")],
    )
    assert component_value(request, "x-thing") == "one, two"


@pytest.mark.parametrize(
    ("component", "message"),
    [
        ("@status", "unsupported derived component"),
        ("Content-Type", "lowercase"),
        ("x-absent", "not in the request"),
        ("x-evil", "cannot carry"),
    ],
)
def test_unusable_components_are_refused(component: str, message: str) -> None:
    request = HttpRequest.build("GET", "https://example.com/", {"X-Evil": "caf\u00e9"})
    with pytest.raises(SignatureInvalidError, match=message):
        component_value(request, component)


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        ('("@method" "@method");created=1', "covered twice"),
        ('("@query-param";name="Pet");created=1', "component parameters"),
        ('("@method" 7);created=1', "quoted strings"),
        ("(method);created=1", "quoted strings"),
    ],
)
def test_malformed_covered_components_are_refused(inner: str, message: str) -> None:
    with pytest.raises(SignatureInvalidError, match=message):
        covered_components(parse_inner_list(inner))


def test_relative_targets_are_refused() -> None:
    with pytest.raises(SignatureInvalidError, match="absolute URI"):
        component_value(HttpRequest.build("GET", "/v1/records"), "@path")


def test_asgi_scope_gives_the_bytes_the_client_sent() -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/records/a b",  # decoded by the server
        "raw_path": b"/v1/records/a%20b",
        "query_string": b"x=%2F",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
        "server": ("127.0.0.1", 8000),
    }
    request = HttpRequest.from_asgi(scope, b"{}")
    assert request.url == "http://127.0.0.1:8000/v1/records/a%20b?x=%2F"
    assert component_value(request, "@path") == "/v1/records/a%20b"
    assert component_value(request, "@query") == "?x=%2F"
    assert component_value(request, "@authority") == "127.0.0.1:8000"
    assert request.header("Content-Type") == "application/json"
    assert request.body == b"{}"
