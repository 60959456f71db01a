"""Sign an outgoing request the way the gateway verifies it (the SDK's half of the scheme).

:func:`sign_request` returns the headers to send: the caller's own headers
plus ``Content-Digest`` (RFC 9530, SHA-256 of the body),
``AccessLedger-Certificate`` (the caller's DER certificate),
``Signature-Input`` and ``Signature`` (RFC 9421, label ``accessledger``).
The URL must be the absolute URL exactly as it will be sent (path and query
percent-encoded already), because the signature covers ``@path`` and
``@query`` byte for byte.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from http_sfv.dictionary import Dictionary
from http_sfv.item import Item

from crypto.identity import Identity
from gateway.auth.digest import content_digest
from gateway.auth.ecdsa import der_to_raw
from gateway.auth.message import HttpRequest
from gateway.auth.profile import (
    ALGORITHM,
    CERTIFICATE_HEADER,
    LABEL,
    NONCE_PATTERN,
    REQUIRED_COMPONENTS,
    TAG,
    certificate_fingerprint,
)
from gateway.auth.signature_base import parse_inner_list, signature_base, signature_params

# Headers sign_request writes; any the caller passed are replaced, never duplicated.
_WRITTEN = frozenset({"content-digest", "signature", "signature-input", CERTIFICATE_HEADER.lower()})
_NONCE = re.compile(NONCE_PATTERN)


def new_nonce() -> str:
    """A fresh random nonce: 32 characters of base64url (192 bits)."""
    return secrets.token_urlsafe(24)


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    identity: Identity,
    now: datetime,
    nonce: str | None = None,
    include_certificate: bool = True,
) -> dict[str, str]:
    """Return ``headers`` plus the digest, certificate and signature headers for this request.

    ``identity`` must hold its private key. ``now`` becomes the signature's
    ``created`` time (whole seconds); ``nonce`` defaults to a fresh random
    one. The signature covers ``@method``, ``@path``, ``@query`` and
    ``content-digest``, and ``content-type`` when ``headers`` has one.
    ``include_certificate=False`` leaves out the certificate header for a
    gateway that already knows the caller's certificate.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    nonce = new_nonce() if nonce is None else nonce
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 16-128 characters of [A-Za-z0-9_-]")
    signed = {name: value for name, value in headers.items() if name.lower() not in _WRITTEN}
    signed["Content-Digest"] = content_digest(body)
    if include_certificate:
        der = identity.certificate.public_bytes(serialization.Encoding.DER)
        signed[CERTIFICATE_HEADER] = str(Item(der))

    components = REQUIRED_COMPONENTS
    if any(name.lower() == "content-type" for name in signed):
        components = (*components, "content-type")
    params = signature_params(
        components,
        {
            "created": int(now.timestamp()),
            "nonce": nonce,
            "keyid": certificate_fingerprint(identity.certificate),
            "alg": ALGORITHM,
            "tag": TAG,
        },
    )
    inner = parse_inner_list(params)
    request = HttpRequest.build(method.upper(), url, signed, body)
    raw = der_to_raw(identity.sign(signature_base(request, inner)))

    signature_input = Dictionary()
    signature_input[LABEL] = inner
    signature = Dictionary()
    signature[LABEL] = raw
    signed["Signature-Input"] = str(signature_input)
    signed["Signature"] = str(signature)
    return signed
