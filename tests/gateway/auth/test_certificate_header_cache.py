"""The parsed-certificate-header cache never changes a verdict."""

from __future__ import annotations

from datetime import datetime

import pytest

from crypto.consortium import Consortium
from crypto.identity import Identity
from gateway.auth import (
    CERTIFICATE_HEADER,
    CertificateRevokedError,
    CertificateUnknownError,
    MemoryNonceCache,
    TrustStore,
    certificate_fingerprint,
    verify_request,
)
from tests.gateway.auth.conftest import replace_header, signed_request


def test_cached_header_is_still_matched_against_the_key_id(
    officer: Identity, consortium: Consortium, trust: TrustStore, now: datetime
) -> None:
    nonces = MemoryNonceCache()
    genuine = signed_request(officer, now)
    verify_request(genuine, trust=trust, nonces=nonces, now=now)  # header parsed and cached
    header = genuine.header(CERTIFICATE_HEADER)
    assert header is not None
    # Another officer's signature, carrying the first officer's (cached) certificate header.
    other = consortium.identity("officer.education.cd1")
    swapped = replace_header(signed_request(other, now), CERTIFICATE_HEADER, header)
    with pytest.raises(CertificateUnknownError, match="not the SHA-256"):
        verify_request(swapped, trust=trust, nonces=nonces, now=now)


def test_bad_headers_are_refused_every_time(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    for _ in range(3):
        garbage = replace_header(signed_request(officer, now), CERTIFICATE_HEADER, ":AAAA:")
        with pytest.raises(CertificateUnknownError, match="DER certificate"):
            verify_request(garbage, trust=trust, nonces=MemoryNonceCache(), now=now)


def test_revocation_applies_to_a_cached_header(
    officer: Identity, trust: TrustStore, now: datetime
) -> None:
    nonces = MemoryNonceCache()
    verify_request(signed_request(officer, now), trust=trust, nonces=nonces, now=now)
    revoked = {certificate_fingerprint(officer.certificate)}
    with pytest.raises(CertificateRevokedError):
        verify_request(
            signed_request(officer, now), trust=trust, nonces=nonces, now=now, revoked=revoked
        )
