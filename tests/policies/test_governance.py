"""Majority approval of a policy bundle by department admins (real ECDSA keys)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from fabric_protos.msp import identities_pb2

from crypto.signing import P256_ORDER, sign
from policies.bundle import PolicyBundle
from policies.errors import ApprovalError, InsufficientApprovalsError
from policies.governance import (
    Approval,
    majority,
    sign_approval,
    signer_certificate,
    verify_approvals,
)
from policies.vocabulary import ORGS

NOW = datetime(2025, 6, 1, tzinfo=UTC)
Registry = dict[str, list[x509.Certificate]]


@dataclass(frozen=True)
class Admin:
    org: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def serialized(self) -> bytes:
        pem = self.cert.public_bytes(serialization.Encoding.PEM)
        return identities_pb2.SerializedIdentity(
            mspid=f"{self.org}MSP", id_bytes=pem
        ).SerializeToString()

    def approve(self, bundle: PolicyBundle) -> Approval:
        return sign_approval(bundle, self.serialized(), lambda m: sign(self.key, m))


def _admin(org: str, name: str = "Admin", days: int = 365) -> Admin:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "admin"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name}@{org.lower()}.gov.example"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return Admin(org, key, cert)


@pytest.fixture(scope="module")
def admins() -> dict[str, Admin]:
    return {org: _admin(org) for org in ORGS}


@pytest.fixture(scope="module")
def second_hrss_admin() -> Admin:
    return _admin("HRSS", "Admin2")


@pytest.fixture(scope="module")
def registry(
    admins: dict[str, Admin], second_hrss_admin: Admin
) -> dict[str, list[x509.Certificate]]:
    certs = {org: [admin.cert] for org, admin in admins.items()}
    certs["HRSS"].append(second_hrss_admin.cert)
    return certs


def test_majority_rule() -> None:
    assert [majority(n) for n in (1, 2, 3, 7, 8, 9)] == [1, 2, 2, 4, 5, 5]


def test_four_of_eight_fails(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    approvals = [admins[org].approve(bundle) for org in ORGS[:4]]
    with pytest.raises(InsufficientApprovalsError, match=r"4 of 8 .* 5 required"):
        verify_approvals(bundle, approvals, registry)


def test_five_of_eight_passes(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    approvals = [admins[org].approve(bundle) for org in ORGS[3:]]
    assert verify_approvals(bundle, approvals, registry, now=NOW) == tuple(sorted(ORGS[3:]))


def test_all_eight_pass(bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry) -> None:
    approvals = [admins[org].approve(bundle) for org in reversed(ORGS)]
    assert verify_approvals(bundle, approvals, registry) == tuple(sorted(ORGS))


def test_one_department_counts_once(
    bundle: PolicyBundle, admins: dict[str, Admin], second_hrss_admin: Admin, registry: Registry
) -> None:
    assert "HRSS" in ORGS[:4]
    approvals = [admins[org].approve(bundle) for org in ORGS[:4]]
    approvals.append(second_hrss_admin.approve(bundle))  # a second HRSS admin
    approvals.append(approvals[0])  # the very same approval again
    with pytest.raises(InsufficientApprovalsError, match="4 of 8"):
        verify_approvals(bundle, approvals, registry)
    repeated = [admins["Education"].approve(bundle)] * 6
    with pytest.raises(InsufficientApprovalsError, match="1 of 8"):
        verify_approvals(bundle, repeated, registry)


def test_forged_signature_rejected(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    approvals = [admins[org].approve(bundle) for org in ORGS[:5]]
    forger = ec.generate_private_key(ec.SECP256R1())
    approvals.append(Approval(admins["Audit"].serialized(), sign(forger, bundle.signed_bytes())))
    with pytest.raises(ApprovalError, match="approval 5: Audit admin signature is invalid"):
        verify_approvals(bundle, approvals, registry)


def test_signature_for_another_version_rejected(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    old = bundle.with_version(2)
    approvals = [admins[org].approve(old) for org in ORGS[:5]]
    with pytest.raises(ApprovalError):
        verify_approvals(bundle.with_version(3), approvals, registry)
    assert len(verify_approvals(old, approvals, registry)) == 5


def test_non_admin_signer_rejected(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    outsider = _admin("HRSS", "Officer")  # right org name, but not a registered admin cert
    approvals = [admins[org].approve(bundle) for org in ORGS[:5]]
    approvals.insert(0, outsider.approve(bundle))
    with pytest.raises(ApprovalError, match="approval 0: signer is not a registered"):
        verify_approvals(bundle, approvals, registry)


def test_high_s_signature_rejected(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    good = admins["Tax"].approve(bundle)
    r, s = decode_dss_signature(good.signature)
    high = Approval(good.signer, encode_dss_signature(r, P256_ORDER - s))
    with pytest.raises(ApprovalError, match="low-S"):
        verify_approvals(bundle, [high], registry, required=1)


def test_expired_admin_certificate_rejected(bundle: PolicyBundle) -> None:
    short = _admin("Tax", days=10)
    registry = {"Tax": [short.cert]}
    approval = short.approve(bundle)
    assert verify_approvals(bundle, [approval], registry, now=NOW) == ("Tax",)
    with pytest.raises(ApprovalError, match="not valid at this time"):
        verify_approvals(bundle, [approval], registry, now=NOW + timedelta(days=11))


def test_signer_encodings(
    admins: dict[str, Admin], bundle: PolicyBundle, registry: Registry
) -> None:
    admin = admins["Health"]
    pem = admin.cert.public_bytes(serialization.Encoding.PEM)
    der = admin.cert.public_bytes(serialization.Encoding.DER)
    for encoded in (admin.serialized(), pem, der, admin.cert):
        assert signer_certificate(encoded) == admin.cert
    signature = sign(admin.key, bundle.signed_bytes())
    assert verify_approvals(bundle, [(pem, signature)], registry, required=1) == ("Health",)
    assert verify_approvals(bundle, [(admin.cert, signature)], registry, required=1) == ("Health",)
    with pytest.raises(ApprovalError):
        signer_certificate(b"not a certificate")
    with pytest.raises(ApprovalError):
        verify_approvals(bundle, [(b"", signature)], registry, required=1)


def test_approval_serialisation(
    admins: dict[str, Admin], bundle: PolicyBundle, registry: Registry
) -> None:
    approvals = [Approval.from_dict(admins[o].approve(bundle).to_dict()) for o in ORGS[:5]]
    assert len(verify_approvals(bundle, approvals, registry)) == 5
    with pytest.raises(ApprovalError):
        Approval.from_dict({"signer": "!!", "signature": ""})


def test_required_bounds(
    bundle: PolicyBundle, admins: dict[str, Admin], registry: Registry
) -> None:
    approvals = [admins[org].approve(bundle) for org in ORGS]
    with pytest.raises(InsufficientApprovalsError):
        verify_approvals(bundle, approvals, registry, required=9)
    with pytest.raises(InsufficientApprovalsError):
        verify_approvals(bundle, approvals, {})
    seven = {org: registry[org] for org in ORGS[:7]}
    assert len(verify_approvals(bundle, approvals[:4], seven)) == 4
