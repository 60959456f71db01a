"""Majority approval of a new department by the current departments' admins.

A department joins the ledger's trust anchor (the departments pinned by
``InitLedger``) only when a strict majority of the *current* departments
approve it, exactly as a policy bundle is installed
(:mod:`policies.governance`): each approval is an admin's ECDSA P-256
signature plus the admin's identity, in the same :class:`Approval` format.

What an admin signs is :func:`department_signed_bytes`: a domain-separation
prefix and the SHA-256 of the RFC 8785 canonical JSON of the department
(:func:`department_document`: organisation name, MSP ID, root CA
certificates in normalised PEM). The prefix keeps such a signature from
being replayed as any other signed AccessLedger document; the hash binds
every byte of the trust it grants, the root certificates included.

The contract, clients and auditors all use this module, so it imports
neither the chaincode nor the gateway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from crypto.identity import Identity
from crypto.onboarding import DEPARTMENT_NAME_RE
from policies.canonical import canonical_json
from policies.errors import PolicyError
from policies.governance import Approval, ApprovalLike, verify_signed_approvals

#: Domain separation of an add-department approval (a signature means nothing else).
DEPARTMENT_APPROVAL_PREFIX: Final = b"accessledger/add-department/v1\n"
#: Most root CA certificates one department may bring.
MAX_ROOT_CERTS: Final = 8
_MEMBERS: Final = frozenset({"org", "msp_id", "root_certs"})
_MAX_PEM_CHARS: Final = 16 * 1024


class DepartmentError(PolicyError):
    """A department description is malformed: names, members or root certificates."""

    code = "department_invalid"


def _name(department: Mapping[str, Any], member: str) -> str:
    value = department.get(member)
    if not isinstance(value, str) or not DEPARTMENT_NAME_RE.match(value):
        raise DepartmentError(
            f"department.{member} must be an ASCII letter followed by letters and digits"
            " (at most 64)"
        )
    return value


def _root(pem: Any, index: int) -> x509.Certificate:
    where = f"department.root_certs[{index}]"
    if not isinstance(pem, str) or len(pem) > _MAX_PEM_CHARS:
        raise DepartmentError(f"{where} must be a PEM certificate")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (UnicodeEncodeError, ValueError):
        raise DepartmentError(f"{where} is not a PEM X.509 certificate") from None
    if len(certs) != 1:
        raise DepartmentError(f"{where} must hold exactly one certificate")
    cert = certs[0]
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DepartmentError(f"{where} key is not ECDSA P-256")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        signs_certs = cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except (x509.ExtensionNotFound, ValueError):
        is_ca = signs_certs = False
    if not (is_ca and signs_certs):
        raise DepartmentError(f"{where} is not a CA certificate (CA:TRUE and keyCertSign)")
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # wrong issuer name, bad signature: not a self-signed root
        raise DepartmentError(f"{where} is not a self-signed root certificate") from None
    return cert


def department_roots(department: Mapping[str, Any]) -> tuple[x509.Certificate, ...]:
    """The department's root CA certificates, each checked to be a self-signed P-256 CA.

    Validity in time is not checked here (it depends on when); the contract
    checks it at the transaction time.
    """
    pems = department.get("root_certs")
    if not isinstance(pems, list) or not 1 <= len(pems) <= MAX_ROOT_CERTS:
        raise DepartmentError(
            f"department.root_certs must list 1 to {MAX_ROOT_CERTS} PEM certificates"
        )
    roots = tuple(_root(pem, index) for index, pem in enumerate(pems))
    if len({c.public_bytes(Encoding.DER) for c in roots}) != len(roots):
        raise DepartmentError("department.root_certs lists a certificate twice")
    return roots


def department_document(department: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``{org, msp_id, root_certs}`` and return it normalised (PEM re-encoded).

    Raises :class:`DepartmentError` for a missing or unknown member, a name
    that is not a valid department name, or a root that is not a self-signed
    ECDSA P-256 CA certificate.
    """
    if not isinstance(department, Mapping):
        raise DepartmentError("department must be an object {org, msp_id, root_certs}")
    members = set(department)
    if members != _MEMBERS:
        missing, unknown = sorted(_MEMBERS - members), sorted(str(m) for m in members - _MEMBERS)
        detail = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise DepartmentError(f"department {detail}")
    return {
        "org": _name(department, "org"),
        "msp_id": _name(department, "msp_id"),
        "root_certs": [
            c.public_bytes(Encoding.PEM).decode("ascii") for c in department_roots(department)
        ],
    }


def department_digest(department: Mapping[str, Any]) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of the normalised department."""
    return hashlib.sha256(canonical_json(department_document(department))).hexdigest()


def department_signed_bytes(department: Mapping[str, Any]) -> bytes:
    """The bytes an admin signs to approve adding ``department``."""
    return DEPARTMENT_APPROVAL_PREFIX + department_digest(department).encode("ascii")


def sign_department_approval(department: Mapping[str, Any], admin: Identity) -> Approval:
    """``admin``'s :class:`Approval` of adding ``department`` (needs the private key)."""
    return Approval(
        signer=admin.serialized(), signature=admin.sign(department_signed_bytes(department))
    )


def department_approval(department: Mapping[str, Any], admin: Identity) -> dict[str, str]:
    """One approval as ``AddDepartment`` takes it: ``{signer, signature}`` in base64."""
    return sign_department_approval(department, admin).to_dict()


def verify_department_approvals(
    department: Mapping[str, Any],
    approvals: Sequence[ApprovalLike],
    admin_certs_by_org: Mapping[str, Sequence[x509.Certificate]],
    required: int | None = None,
    *,
    now: datetime | None = None,
) -> tuple[str, ...]:
    """Check that enough current departments approved adding ``department``; return them.

    The rules are :func:`policies.governance.verify_approvals`' with the
    department's signed bytes as the message: each signer's certificate must
    be byte-for-byte a registered admin certificate of one department of
    ``admin_certs_by_org`` (and, with ``now``, valid then); every signature
    must verify; any invalid approval rejects the set; one department counts
    once; ``required`` defaults to a strict majority of ``admin_certs_by_org``.

    Raises :class:`DepartmentError` for a malformed department,
    :class:`ApprovalError` for an invalid approval and
    :class:`InsufficientApprovalsError` when too few departments approved.
    """
    return verify_signed_approvals(
        department_signed_bytes(department),
        f"adding department {department['org']}",
        approvals,
        admin_certs_by_org,
        required,
        now=now,
    )
