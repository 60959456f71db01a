"""Onboarding a department: AddDepartment.

``InitLedger`` pinned the consortium's departments and their root CAs
(:mod:`chaincode.caller`); every identity the contract meets is classified
against them. ``AddDepartment`` extends that trust anchor by one department,
and only with the consent of the consortium: a strict majority of the
*current* departments (5 of 8) must approve, in the same way a policy bundle
is installed. Each approval is a current department admin's signature over
:func:`policies.departments.department_signed_bytes` (a domain-separated
SHA-256 of the canonical department document); the approving certificate must
be issued by its department's pinned root, have NodeOU ``admin`` and be valid
at the transaction time. Any invalid approval refuses the call; several
approvals from one department count once. The caller must be an admin of a
current department.

On success the stored configuration gains the department, so from the next
transaction on :func:`chaincode.caller.identify` accepts its identities, and
the event ``DepartmentAdded`` records who approved. On a Fabric channel the
department's MSP must also join the channel configuration (a config update,
``network.fabric.configtx``) before its peers endorse and its clients'
proposals pass the peer's own MSP check; the two steps are independent and
each needs the consortium's majority.

Deterministic (I4): the only clock is the transaction timestamp.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from chaincode.authz import require_admin
from chaincode.caller import Department, certificate_fingerprint
from chaincode.codec import check_fields
from chaincode.context import Tx
from chaincode.errors import Conflict, Forbidden, InvalidArgument
from chaincode.governance import approving_admins, parse_approvals
from chaincode.ledger import CONFIG_KEY
from crypto.certificates import validate_certificate
from crypto.errors import CertificateError
from policies.departments import (
    DepartmentError,
    department_approval,
    department_digest,
    department_document,
    department_roots,
    verify_department_approvals,
)
from policies.errors import ApprovalError, InsufficientApprovalsError
from policies.governance import majority

__all__ = ["add_department", "department_approval"]


def _check_roots(roots: tuple[x509.Certificate, ...], tx: Tx) -> None:
    for index, root in enumerate(roots):
        try:
            validate_certificate(root, ca_certs=[root], now=tx.ledger.now, usage="ca")
        except CertificateError as exc:
            raise InvalidArgument(f"department.root_certs[{index}]: {exc.message}") from None


async def add_department(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Pin one more department, approved by a strict majority of the current ones."""
    check_fields(arg, "AddDepartment argument", {"department", "approvals"})
    config = await tx.config()
    caller = await tx.caller()
    require_admin(caller)
    try:
        document = department_document(arg["department"])
        roots = department_roots(document)
    except DepartmentError as exc:
        raise InvalidArgument(exc.message) from None
    _check_roots(roots, tx)
    approvals = parse_approvals(arg)

    org, msp_id = document["org"], document["msp_id"]
    # Case-insensitively: names become directories, DNS labels and identity names.
    taken = {n.lower() for d in config.departments for n in (d.org, d.msp_id)}
    if org.lower() in taken or msp_id.lower() in taken:
        raise Conflict(
            f"department {org} ({msp_id}) clashes with a current department's name or MSP ID",
            code="department_exists",
        )
    # A shared root would make one department's identities pass as the other's.
    pinned = {r.public_bytes(Encoding.DER) for d in config.departments for r in d.root_certs}
    if any(r.public_bytes(Encoding.DER) in pinned for r in roots):
        raise Conflict(
            f"a root CA of department {org} is already a current department's root",
            code="root_ca_in_use",
        )

    admin_certs = approving_admins(config, approvals, now=tx.ledger.now)
    required = majority(len(config.departments))
    try:
        approved_by = verify_department_approvals(
            document, approvals, admin_certs, required=required, now=tx.ledger.now
        )
    except (ApprovalError, InsufficientApprovalsError) as exc:
        raise Forbidden(exc.message, code=exc.code) from None

    updated = config.with_department(Department(org=org, msp_id=msp_id, root_certs=roots))
    await tx.ledger.put_json(CONFIG_KEY, updated.to_dict())
    result = {
        "department": {
            "org": org,
            "msp_id": msp_id,
            "root_cert_fingerprints": [certificate_fingerprint(r) for r in roots],
        },
        "department_hash": department_digest(document),
        "approved_by": list(approved_by),
        "approvals_required": required,
        "departments": len(updated.departments),
        "added_by": caller.ref(),
        "added_at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
    }
    tx.ledger.set_event("DepartmentAdded", result)
    return result
