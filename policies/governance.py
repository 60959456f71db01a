"""Majority approval of a policy bundle by department admins.

A bundle is installed or replaced only when a strict majority of the
consortium's departments approved it: more than half of the departments in
``admin_certs_by_org`` must each contribute at least one valid approval. An
approval is an admin's ECDSA P-256 signature over
:meth:`~policies.bundle.PolicyBundle.signed_bytes`, together with the admin's
identity (a Fabric ``SerializedIdentity`` or a certificate).

Rules, all enforced by :func:`verify_approvals`:

* the signer's certificate must be byte-for-byte one of the registered admin
  certificates of some department (the MSP id inside a ``SerializedIdentity``
  is not trusted on its own; the certificate decides the department);
* the signature must verify (low-S, as Fabric requires) over this bundle's
  signed bytes, which bind both the bundle hash and the version;
* any invalid approval rejects the whole set: a forged or misdirected
  signature in a governance transaction is a red flag, not noise;
* several approvals from one department count once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.msp import identities_pb2 as _identities_pb2_module
from google.protobuf.message import DecodeError

from crypto.errors import VerificationError
from crypto.signing import Signer, verify
from policies.bundle import PolicyBundle
from policies.errors import ApprovalError, InsufficientApprovalsError

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_DER = Encoding.DER
# The generated protobuf module has no type information.
_identities_pb2: Any = _identities_pb2_module


@dataclass(frozen=True)
class Approval:
    """One admin's approval: their identity bytes and their signature."""

    signer: bytes
    signature: bytes

    def to_dict(self) -> dict[str, str]:
        return {
            "signer": base64.b64encode(self.signer).decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Approval:
        try:
            return cls(
                signer=base64.b64decode(data["signer"], validate=True),
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ApprovalError("approval must hold base64 signer and signature") from exc


ApprovalLike = Approval | tuple[bytes | x509.Certificate, bytes]


def sign_approval(bundle: PolicyBundle, signer_identity: bytes, signer: Signer) -> Approval:
    """Approve ``bundle``: sign its signed bytes with an admin's signer."""
    return Approval(signer=signer_identity, signature=signer(bundle.signed_bytes()))


def majority(department_count: int) -> int:
    """The smallest strict majority of ``department_count`` (8 -> 5, 7 -> 4)."""
    return department_count // 2 + 1


def signer_certificate(signer: bytes | x509.Certificate) -> x509.Certificate:
    """Decode a serialized identity, PEM or DER certificate into a certificate."""
    if isinstance(signer, x509.Certificate):
        return signer
    if not isinstance(signer, bytes) or not signer:
        raise ApprovalError("signer must be certificate or serialized-identity bytes")
    try:
        if signer.lstrip().startswith(_PEM_CERT):
            return x509.load_pem_x509_certificate(signer)
        try:
            identity = _identities_pb2.SerializedIdentity.FromString(signer)
        except DecodeError:
            identity = None
        if identity is not None and identity.id_bytes.lstrip().startswith(_PEM_CERT):
            return x509.load_pem_x509_certificate(identity.id_bytes)
        return x509.load_der_x509_certificate(signer)
    except ValueError as exc:
        raise ApprovalError("signer is not a certificate or serialized identity") from exc


def verify_approvals(
    bundle: PolicyBundle,
    approvals: Sequence[ApprovalLike],
    admin_certs_by_org: Mapping[str, Sequence[x509.Certificate]],
    required: int | None = None,
    *,
    now: datetime | None = None,
) -> tuple[str, ...]:
    """Check that enough departments approved ``bundle``; return them, sorted.

    :func:`verify_signed_approvals` over the bundle's signed bytes.
    """
    return verify_signed_approvals(
        bundle.signed_bytes(),
        f"policy bundle v{bundle.version}",
        approvals,
        admin_certs_by_org,
        required,
        now=now,
    )


def verify_signed_approvals(
    message: bytes,
    what: str,
    approvals: Sequence[ApprovalLike],
    admin_certs_by_org: Mapping[str, Sequence[x509.Certificate]],
    required: int | None = None,
    *,
    now: datetime | None = None,
) -> tuple[str, ...]:
    """Check that enough departments' admins signed ``message``; return them, sorted.

    Each signer's certificate must be byte-for-byte one of the registered
    admin certificates of one department in ``admin_certs_by_org`` and, with
    ``now`` (timezone-aware), valid then; every signature must verify; any
    invalid approval rejects the whole set; a department counts once.
    ``required`` defaults to a strict majority of the departments in
    ``admin_certs_by_org``. ``what`` names the approved object in messages.

    Raises :class:`ApprovalError` for any invalid approval and
    :class:`InsufficientApprovalsError` when too few departments approved.
    """
    if not admin_certs_by_org:
        raise InsufficientApprovalsError("no department admins are registered")
    needed = majority(len(admin_certs_by_org)) if required is None else required
    if not 1 <= needed <= len(admin_certs_by_org):
        raise InsufficientApprovalsError(
            f"required approvals must be between 1 and {len(admin_certs_by_org)}"
        )
    org_of_cert: dict[bytes, str] = {}
    for org in sorted(admin_certs_by_org):
        for cert in admin_certs_by_org[org]:
            org_of_cert.setdefault(cert.public_bytes(_DER), org)
    approving: set[str] = set()
    for index, item in enumerate(approvals):
        signer, signature = (item.signer, item.signature) if isinstance(item, Approval) else item
        where = f"approval {index}"
        cert = signer_certificate(signer)
        found = org_of_cert.get(cert.public_bytes(_DER))
        if found is None:
            raise ApprovalError(f"{where}: signer is not a registered department admin")
        org = found
        if now is not None and not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise ApprovalError(f"{where}: {org} admin certificate is not valid at this time")
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ApprovalError(f"{where}: {org} admin key is not ECDSA")
        if not isinstance(signature, bytes):
            raise ApprovalError(f"{where}: signature must be bytes")
        try:
            verify(public_key, message, signature)
        except VerificationError as exc:
            raise ApprovalError(
                f"{where}: {org} admin signature is invalid for {what} ({exc.message})"
            ) from exc
        approving.add(org)
    if len(approving) < needed:
        raise InsufficientApprovalsError(
            f"{len(approving)} of {len(admin_certs_by_org)} departments approved {what};"
            f" {needed} required"
        )
    return tuple(sorted(approving))
