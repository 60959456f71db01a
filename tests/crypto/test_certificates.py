"""Tests for crypto.certificates and crypto.identity: validation, attributes, NodeOUs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crypto.ca import CertificateAuthority
from crypto.certificates import (
    ATTRIBUTE_OID,
    encode_attributes,
    load_certificate_pem,
    node_ou,
    read_attributes,
    validate_certificate,
)
from crypto.errors import AccessLedgerError, CertificateError, CryptoError
from crypto.identity import Identity, IdentityKind, kind_of, officer_attributes
from crypto.signing import verify
from tests.fabric_fixtures import FABRIC_FIXTURES

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FIXTURES = FABRIC_FIXTURES / "msp" / "peerOrganizations" / "org1.example.com"


@pytest.fixture(scope="module")
def education() -> CertificateAuthority:
    return CertificateAuthority.create(
        org="Education", msp_id="EducationMSP", domain="education.gov.example", now=NOW
    )


@pytest.fixture(scope="module")
def tax() -> CertificateAuthority:
    return CertificateAuthority.create(
        org="Tax", msp_id="TaxMSP", domain="tax.gov.example", now=NOW
    )


def _usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


def _handmade(
    ca: CertificateAuthority,
    *,
    usage: x509.KeyUsage | None,
    is_ca: bool = False,
    subject_key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    """A certificate signed by ``ca`` with exactly the extensions given."""
    key = subject_key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "handmade")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(ca.private_key, hashes.SHA256())


def test_valid_certificate_is_accepted(education: CertificateAuthority) -> None:
    cert, _ = education.issue(common_name="officer", node_ou="client", now=NOW)
    validate_certificate(cert, ca_certs=[education.certificate], now=NOW)
    # Either boundary of the validity period is inside it.
    validate_certificate(cert, ca_certs=[education.certificate], now=cert.not_valid_before_utc)
    validate_certificate(cert, ca_certs=[education.certificate], now=cert.not_valid_after_utc)


def test_certificate_from_another_org_ca_is_rejected(
    education: CertificateAuthority, tax: CertificateAuthority
) -> None:
    cert, _ = tax.issue(common_name="officer.tax.sz1", node_ou="client", now=NOW)
    with pytest.raises(CertificateError, match="not issued by the organisation's CA"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW)


def test_impostor_ca_with_the_same_name_is_rejected(education: CertificateAuthority) -> None:
    """Same subject DN, different key: only the signature check can tell them apart."""
    impostor = CertificateAuthority.create(
        org="Education", msp_id="EducationMSP", domain="education.gov.example", now=NOW
    )
    assert impostor.certificate.subject == education.certificate.subject
    cert, _ = impostor.issue(common_name="mole", node_ou="client", now=NOW)
    with pytest.raises(CertificateError, match="not issued by the organisation's CA"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW)


def test_expired_certificate_is_rejected(education: CertificateAuthority) -> None:
    cert, _ = education.issue(common_name="old", node_ou="client", now=NOW)
    later = cert.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(CertificateError, match="certificate expired at 2028-11-28T12:00:00"):
        validate_certificate(cert, ca_certs=[education.certificate], now=later)


def test_not_yet_valid_certificate_is_rejected(education: CertificateAuthority) -> None:
    cert, _ = education.issue(common_name="future", node_ou="client", now=NOW + timedelta(days=5))
    with pytest.raises(CertificateError, match="not valid before 2026-12-04"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW)


def test_expired_ca_invalidates_what_it_issued(education: CertificateAuthority) -> None:
    short = CertificateAuthority.create(
        org="E", msp_id="EMSP", domain="e.example", now=NOW, valid_for=timedelta(days=10)
    )
    cert, _ = short.issue(common_name="x", node_ou="client", now=NOW)
    assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc  # clamped
    validate_certificate(cert, ca_certs=[short.certificate], now=NOW + timedelta(days=9))
    with pytest.raises(CertificateError, match="expired"):
        validate_certificate(cert, ca_certs=[short.certificate], now=NOW + timedelta(days=11))


def test_missing_digital_signature_usage_is_rejected(education: CertificateAuthority) -> None:
    cert = _handmade(education, usage=_usage(key_encipherment=True))
    with pytest.raises(CertificateError, match="missing digitalSignature key usage"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW)


def test_missing_key_usage_extension_is_rejected(education: CertificateAuthority) -> None:
    cert = _handmade(education, usage=None)
    with pytest.raises(CertificateError, match="missing digitalSignature key usage"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW)


def test_ca_certificate_cannot_sign_as_an_identity(education: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match="CA certificate cannot be used as a signing"):
        validate_certificate(education.certificate, ca_certs=[education.certificate], now=NOW)


def test_ca_usage_requires_key_cert_sign(education: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak-ca")])
    weak_ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="missing keyCertSign key usage"):
        validate_certificate(weak_ca, ca_certs=[weak_ca], now=NOW, usage="ca")


def test_leaf_is_not_a_ca(education: CertificateAuthority) -> None:
    cert, _ = education.issue(common_name="leaf", node_ou="client", now=NOW)
    with pytest.raises(CertificateError, match="not a CA"):
        validate_certificate(cert, ca_certs=[education.certificate, cert], now=NOW, usage="ca")


def test_leaf_signed_by_a_non_ca_is_rejected(education: CertificateAuthority) -> None:
    """A leaf whose issuer is itself a leaf fails on the issuer's CA check."""
    leaf, leaf_key = education.issue(common_name="leaf", node_ou="client", now=NOW)
    assert leaf_key is not None
    fake_ca = CertificateAuthority(
        certificate=leaf, private_key=leaf_key, org="Education", msp_id="EducationMSP"
    )
    child = _handmade(fake_ca, usage=_usage(digital_signature=True))
    with pytest.raises(CertificateError, match="issuer certificate is not a CA"):
        validate_certificate(child, ca_certs=[education.certificate, leaf], now=NOW)


def test_non_p256_identity_key_is_rejected(education: CertificateAuthority) -> None:
    cert = _handmade(
        education,
        usage=_usage(digital_signature=True),
        subject_key=ec.generate_private_key(ec.SECP384R1()),
    )
    with pytest.raises(CertificateError, match="not ECDSA P-256"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW)


def test_arguments_are_checked(education: CertificateAuthority) -> None:
    cert, _ = education.issue(common_name="x", node_ou="client", now=NOW)
    with pytest.raises(CertificateError, match="no CA certificates"):
        validate_certificate(cert, ca_certs=[], now=NOW)
    with pytest.raises(ValueError, match="unknown certificate usage"):
        validate_certificate(cert, ca_certs=[education.certificate], now=NOW, usage="tls")
    with pytest.raises(ValueError, match="timezone"):
        validate_certificate(
            cert,
            ca_certs=[education.certificate],
            now=datetime(2026, 12, 1),
        )


def test_real_fabric_certificates_validate_against_their_ca(
    education: CertificateAuthority,
) -> None:
    """A cryptogen-made User1 cert passes against Org1's CA, and fails against ours."""
    ca = load_certificate_pem((FIXTURES / "ca/ca.org1.example.com-cert.pem").read_bytes())
    user = load_certificate_pem(
        (
            FIXTURES / "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem"
        ).read_bytes()
    )
    recorded = datetime(2026, 11, 30, tzinfo=UTC)
    validate_certificate(user, ca_certs=[ca], now=recorded)
    validate_certificate(ca, ca_certs=[ca], now=recorded, usage="ca")
    assert node_ou(user) == "client"
    assert read_attributes(user) == {}
    with pytest.raises(CertificateError, match="not issued"):
        validate_certificate(user, ca_certs=[education.certificate], now=recorded)


def test_load_certificate_pem_rejects_garbage() -> None:
    with pytest.raises(CertificateError, match="not a PEM"):
        load_certificate_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# -- attributes ------------------------------------------------------------------------


def test_attributes_round_trip_through_the_extension(education: CertificateAuthority) -> None:
    attrs = officer_attributes(role="labour_inspector", region="440300", clearance=2)
    cert, _ = education.issue(common_name="insp", node_ou="client", attributes=attrs, now=NOW)
    raw = cert.extensions.get_extension_for_oid(ATTRIBUTE_OID)
    assert not raw.critical
    assert isinstance(raw.value, x509.UnrecognizedExtension)
    document = json.loads(raw.value.value)
    assert document["attrs"]["role"] == "labour_inspector"
    assert document["attrs"]["region"] == "440300"
    assert document["attrs"]["clearance"] == "2"
    assert read_attributes(cert) == document["attrs"]


def test_encode_attributes_is_fabric_json() -> None:
    assert json.loads(encode_attributes({"role": "r"})) == {"attrs": {"role": "r"}}
    with pytest.raises(TypeError):
        encode_attributes({"clearance": 2})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"attributes": {}}', b'{"attrs": {"clearance": 2}}', b"[1]"],
)
def test_malformed_attribute_extension_is_an_error(
    education: CertificateAuthority, payload: bytes
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")]))
        .issuer_name(education.certificate.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.UnrecognizedExtension(ATTRIBUTE_OID, payload), critical=False)
        .sign(education.private_key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="attribute extension"):
        read_attributes(cert)


def test_officer_attributes_are_validated() -> None:
    assert officer_attributes(role="tax_officer", region="510100", clearance=3) == {
        "role": "tax_officer",
        "region": "510100",
        "clearance": "3",
    }
    for kwargs, reason in [
        ({"role": "tax_officer", "region": "5101", "clearance": 1}, "6-digit"),
        ({"role": "tax_officer", "region": "51010x", "clearance": 1}, "6-digit"),
        ({"role": "tax_officer", "region": "510100", "clearance": 4}, "outside 0-3"),
        ({"role": "tax_officer", "region": "510100", "clearance": -1}, "outside 0-3"),
        ({"role": "Tax Officer", "region": "510100", "clearance": 1}, "lowercase"),
    ]:
        with pytest.raises(AccessLedgerError, match=reason) as info:
            officer_attributes(**kwargs)  # type: ignore[arg-type]
        assert info.value.code == "invalid_attributes"


# -- classification and the Identity object ----------------------------------------------


@pytest.mark.parametrize(
    ("ou", "attrs", "kind"),
    [
        ("peer", {}, IdentityKind.PEER),
        ("orderer", {}, IdentityKind.ORDERER),
        ("admin", {}, IdentityKind.ADMIN),
        ("client", {"role": "registrar"}, IdentityKind.OFFICER),
        ("client", {}, IdentityKind.OFFICER),
        ("client", {"role": "auditor"}, IdentityKind.AUDITOR),
        ("client", {"role": "citizen"}, IdentityKind.CITIZEN),
    ],
)
def test_kind_of_follows_node_ou_and_role(
    ou: str, attrs: dict[str, str], kind: IdentityKind
) -> None:
    assert kind_of(ou, attrs) is kind


def test_kind_of_rejects_a_certificate_without_node_ou() -> None:
    with pytest.raises(CryptoError, match="NodeOU") as info:
        kind_of(None, {})
    assert info.value.code == "unknown_node_ou"


def test_identity_signs_and_serialises(education: CertificateAuthority) -> None:
    from fabric_protos.msp import identities_pb2

    attrs = officer_attributes(role="enrolment_officer", region="440300", clearance=1)
    cert, key = education.issue(common_name="o", node_ou="client", attributes=attrs, now=NOW)
    identity = Identity(
        name="o",
        kind=IdentityKind.OFFICER,
        org="Education",
        msp_id="EducationMSP",
        certificate=cert,
        private_key=key,
        attributes=read_attributes(cert),
    )
    verify(identity.public_key, b"message", identity.sign(b"message"))
    verify(identity.public_key, b"other", identity.signer(b"other"))
    parsed = identities_pb2.SerializedIdentity.FromString(identity.serialized())
    assert parsed.mspid == "EducationMSP"
    assert load_certificate_pem(parsed.id_bytes) == cert
    assert (identity.role, identity.region, identity.clearance) == (
        "enrolment_officer",
        "440300",
        1,
    )
    with pytest.raises(TypeError):
        identity.attributes["role"] = "auditor"  # type: ignore[index]

    public = identity.public_only()
    # Usable as a dict key / set member; equality ignores the private key.
    assert public == identity
    assert {identity, public} == {identity}
    assert public.private_key is None
    assert public.certificate == cert
    with pytest.raises(CryptoError, match="cannot sign") as info:
        public.sign(b"message")
    assert info.value.code == "no_private_key"
