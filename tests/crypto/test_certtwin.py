"""crypto.certtwin: a certificate's other valid encoding, and the one that names it.

The vectors are real certificates issued by :class:`crypto.ca.CertificateAuthority`
(fresh keys per run, so both signature halves occur across the 40 issued);
the twin is checked against the CA with cryptography's own verification.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from chaincode.caller import certificate_fingerprint
from crypto.ca import CertificateAuthority
from crypto.certtwin import low_s_form, signature_twin
from crypto.signing import P256_ORDER

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _s(certificate: x509.Certificate) -> int:
    return decode_dss_signature(certificate.signature)[1]


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        org="HRSS", msp_id="HRSSMSP", domain="hrss.gov.example", now=NOW
    )


@pytest.fixture(scope="module")
def issued(ca: CertificateAuthority) -> list[x509.Certificate]:
    return [
        ca.issue(common_name=f"officer{i}.hrss", node_ou="client", now=NOW)[0] for i in range(40)
    ]


def test_the_ca_issues_only_low_s_certificates(
    ca: CertificateAuthority, issued: list[x509.Certificate]
) -> None:
    for certificate in [ca.certificate, *issued]:
        assert _s(certificate) <= P256_ORDER // 2
        assert low_s_form(certificate) is certificate


def test_a_twin_is_the_same_certificate_under_another_valid_signature(
    ca: CertificateAuthority, issued: list[x509.Certificate]
) -> None:
    for certificate in issued:
        twin = signature_twin(certificate)
        assert twin is not None
        assert _der(twin) != _der(certificate)
        assert twin.tbs_certificate_bytes == certificate.tbs_certificate_bytes
        assert _s(twin) == P256_ORDER - _s(certificate)
        twin.verify_directly_issued_by(ca.certificate)  # raises if the signature is not valid
        assert signature_twin(twin) == certificate
        assert low_s_form(twin) == certificate
        # The ledger names both by one fingerprint.
        assert certificate_fingerprint(twin) == certificate_fingerprint(certificate)


def test_a_twin_with_a_wrong_signature_would_not_verify(
    ca: CertificateAuthority, issued: list[x509.Certificate]
) -> None:
    # The check above can fail: flipping r instead of s gives no valid certificate.
    certificate = issued[0]
    der = bytearray(_der(certificate))
    der[-1] ^= 0x01
    with pytest.raises(InvalidSignature):
        x509.load_der_x509_certificate(bytes(der)).verify_directly_issued_by(ca.certificate)
