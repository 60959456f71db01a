"""Tests for crypto.ca: root CAs and the identity certificates they issue."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crypto.ca import CA_VALIDITY, IDENTITY_VALIDITY, CertificateAuthority
from crypto.certificates import (
    ATTRIBUTE_OID,
    node_ou,
    read_attributes,
    subject_key_identifier,
    validate_certificate,
)
from crypto.errors import CertificateError, KeyFileError
from tests.fabric_fixtures import FABRIC_FIXTURES

NOW = datetime(2026, 11, 29, 9, 30, 15, tzinfo=UTC)
FIXTURES = FABRIC_FIXTURES / "msp"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        org="Education", msp_id="EducationMSP", domain="education.gov.example", now=NOW
    )


def _point_sha256(key: ec.EllipticCurvePublicKey) -> bytes:
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return hashlib.sha256(point).digest()


def test_root_ca_is_self_signed_p256_with_ca_constraints(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert cert.not_valid_before_utc == NOW.replace(microsecond=0)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == CA_VALIDITY
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "ca.education.gov.example"
    )
    assert ca.domain == "education.gov.example"
    validate_certificate(cert, ca_certs=[cert], now=NOW, usage="ca")


def test_issued_certificate_has_fabric_shape(ca: CertificateAuthority) -> None:
    cert, key = ca.issue(common_name="peer0.education", node_ou="peer", now=NOW)
    assert key is not None
    assert key.public_key() == cert.public_key()
    assert cert.issuer == ca.certificate.subject
    assert node_ou(cert) == "peer"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "peer0.education"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _point_sha256(ca.public_key)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == _point_sha256(key.public_key())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == IDENTITY_VALIDITY
    # Peers carry no attribute extension (cryptogen-style).
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_oid(ATTRIBUTE_OID)
    validate_certificate(cert, ca_certs=[ca.certificate], now=NOW)


def test_attributes_get_fabric_ca_bookkeeping(ca: CertificateAuthority) -> None:
    attrs = {"role": "enrolment_officer", "region": "440300", "clearance": "1"}
    cert, _ = ca.issue(
        common_name="officer.education.sz1", node_ou="client", attributes=attrs, now=NOW
    )
    assert read_attributes(cert) == {
        **attrs,
        "hf.EnrollmentID": "officer.education.sz1",
        "hf.Type": "client",
    }


def test_issue_for_a_holder_generated_key(ca: CertificateAuthority) -> None:
    holder = ec.generate_private_key(ec.SECP256R1())
    cert, key = ca.issue(common_name="x", node_ou="client", now=NOW, public_key=holder.public_key())
    assert key is None
    assert cert.public_key() == holder.public_key()


def test_issue_refuses_other_curves_and_unknown_ou(ca: CertificateAuthority) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(CertificateError, match="P-256"):
        ca.issue(common_name="x", node_ou="client", now=NOW, public_key=p384)
    with pytest.raises(CertificateError, match="NodeOU"):
        ca.issue(common_name="x", node_ou="member", now=NOW)


def test_certificate_never_outlives_its_ca(ca: CertificateAuthority) -> None:
    late = ca.certificate.not_valid_after_utc - timedelta(days=30)
    cert, _ = ca.issue(common_name="late", node_ou="client", now=late)
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc


def test_naive_clock_is_a_programming_error(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="timezone"):
        ca.issue(common_name="x", node_ou="client", now=datetime(2026, 1, 1))


def test_serial_numbers_are_unique_and_positive(ca: CertificateAuthority) -> None:
    serials = {
        ca.issue(common_name="s", node_ou="client", now=NOW)[0].serial_number for _ in range(20)
    }
    assert len(serials) == 20
    assert all(0 < s < 2**159 for s in serials)


def test_save_and_load_round_trip(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.save(tmp_path / "ca")
    key_mode = stat.S_IMODE((tmp_path / "ca" / "ca-key.pem").stat().st_mode)
    assert key_mode == 0o600
    loaded = CertificateAuthority.load(tmp_path / "ca", org="Education", msp_id="EducationMSP")
    assert loaded.certificate == ca.certificate
    cert, _ = loaded.issue(common_name="after-load", node_ou="admin", now=NOW)
    validate_certificate(cert, ca_certs=[ca.certificate], now=NOW)


def test_load_rejects_key_not_matching_certificate(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = CertificateAuthority.create(
        org="Tax", msp_id="TaxMSP", domain="tax.gov.example", now=NOW
    )
    ca.save(tmp_path / "ca")
    other.save(tmp_path / "other")
    (tmp_path / "ca" / "ca-key.pem").unlink()
    (tmp_path / "other" / "ca-key.pem").rename(tmp_path / "ca" / "ca-key.pem")
    with pytest.raises(CertificateError, match="does not match"):
        CertificateAuthority.load(tmp_path / "ca", org="Education", msp_id="EducationMSP")


def test_load_rejects_world_readable_ca_key(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.save(tmp_path / "ca")
    (tmp_path / "ca" / "ca-key.pem").chmod(0o644)
    with pytest.raises(KeyFileError, match="0644"):
        CertificateAuthority.load(tmp_path / "ca", org="Education", msp_id="EducationMSP")


def test_key_identifiers_match_fabric_cryptogen() -> None:
    """cryptogen's SKI is SHA-256 of the public point; ours is computed the same way."""
    path = FIXTURES / "peerOrganizations/org1.example.com/ca/ca.org1.example.com-cert.pem"
    fabric_ca = x509.load_pem_x509_certificate(path.read_bytes())
    ski = fabric_ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    key = fabric_ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert subject_key_identifier(key) == ski
