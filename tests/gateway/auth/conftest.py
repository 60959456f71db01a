"""Fixtures and helpers for the authentication tests: real consortium, real signatures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import pytest
from http_sfv.dictionary import Dictionary

from crypto.consortium import Consortium
from crypto.identity import Identity
from gateway.auth import HttpRequest, TrustStore, certificate_fingerprint, sign_request
from gateway.auth.ecdsa import der_to_raw
from gateway.auth.signature_base import parse_inner_list, signature_base, signature_params

URL = "https://gateway.example/v1/access-requests?dry_run=false"
BODY = b'{"subject":"ps1:abc","record_type":"student_record","purpose":"school_enrolment"}'
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture(scope="session")
def trust(consortium: Consortium) -> TrustStore:
    """Trust anchors and known certificates of the shared demo home."""
    return TrustStore.from_consortium(consortium)


@pytest.fixture(scope="session")
def officer(consortium: Consortium) -> Identity:
    """An Education officer with its private key."""
    return consortium.identity("officer.education.sz1")


@pytest.fixture
def now(demo_now: datetime) -> datetime:
    """A verification instant well inside the demo certificates' validity."""
    return demo_now + timedelta(hours=1)


def signed_request(
    identity: Identity,
    now: datetime,
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    headers: Mapping[str, str] = HEADERS,
    nonce: str | None = None,
    include_certificate: bool = True,
) -> HttpRequest:
    """A request signed by the SDK signer, as the gateway would receive it."""
    sent = sign_request(
        method,
        url,
        headers,
        body,
        identity=identity,
        now=now,
        nonce=nonce,
        include_certificate=include_certificate,
    )
    return HttpRequest.build(method, url, sent, body)


def custom_signed(
    request: HttpRequest,
    identity: Identity,
    components: Sequence[str],
    params: Mapping[str, int | str],
    *,
    label: str = "accessledger",
) -> HttpRequest:
    """``request`` with a genuine signature over arbitrary components and parameters.

    Used to produce signatures the SDK never would (missing components, other
    tags, expired), so each verifier check is exercised by a *valid* signature.
    """
    params = {"keyid": certificate_fingerprint(identity.certificate), **params}
    inner = parse_inner_list(signature_params(components, params))
    raw = der_to_raw(identity.sign(signature_base(request, inner)))
    signature_input, signature = Dictionary(), Dictionary()
    signature_input[label] = inner
    signature[label] = raw
    kept = [(k, v) for k, v in request.headers if k.lower() not in ("signature", "signature-input")]
    kept += [("Signature-Input", str(signature_input)), ("Signature", str(signature))]
    return HttpRequest(request.method, request.url, tuple(kept), request.body)


def replace_header(request: HttpRequest, name: str, value: str | None) -> HttpRequest:
    """``request`` with header ``name`` replaced (or removed when ``value`` is None)."""
    kept = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    if value is not None:
        kept.append((name, value))
    return HttpRequest(request.method, request.url, tuple(kept), request.body)
