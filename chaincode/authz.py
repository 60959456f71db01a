"""Who may call what: every authorisation rule of the contract, in one place.

Two kinds of rule live here.

*Structural rules* are fixed by the contract's design and need no policy:
only an admin (NodeOU ``admin``) installs policy or initialises the ledger;
only a registrar of the department that owns a record type (per the anchored
catalogue) registers or amends such records; only a CivilAffairs registrar
binds citizen credentials; only an Audit-department auditor reviews events;
a citizen acts only for the pseudonym their credential is bound to.

*Access-policy decisions* go through the anchored Cedar policy set: whether
a registrar may register this record (``register``, which also checks the
region), whether an officer may read records (``read`` /
``emergency_read``, in :mod:`chaincode.access`) and whether someone may read
a department's access log (``read_events``).

Identities without a jurisdiction -- department admins carry no ``region``
attribute -- enter Cedar with the region :data:`UNSCOPED_REGION`, a
well-formed code that is not assigned in GB/T 2260 and therefore never equals
a record's region; the ``read_events`` policies do not look at regions.
"""

from __future__ import annotations

from typing import Final

from chaincode.caller import Caller
from chaincode.errors import Forbidden
from crypto.identity import REGISTRAR_ROLE, IdentityKind, NodeOU
from policies.engine import Decision, PolicySet
from policies.errors import PolicyRequestError
from policies.requests import (
    ALL_DEPARTMENTS,
    AccessContext,
    AccessLogResource,
    AccessRequest,
    Action,
    Principal,
    RecordResource,
)

#: The department whose auditors review events and may read every access log.
AUDIT_ORG: Final = "Audit"
#: The department that issues citizen credentials and binds them to pseudonyms.
CIVIL_AFFAIRS_ORG: Final = "CivilAffairs"
#: Cedar role of a NodeOU ``admin`` identity.
ADMIN_ROLE: Final = "department_admin"
#: Region given to identities without one (see the module docstring).
UNSCOPED_REGION: Final = "100000"
#: Purpose under which access logs are read.
AUDIT_PURPOSE: Final = "audit"


def is_admin(caller: Caller) -> bool:
    return caller.node_ou == NodeOU.ADMIN


def is_auditor(caller: Caller) -> bool:
    """An auditor of the Audit department (an ``auditor`` role elsewhere does not count)."""
    return caller.kind == IdentityKind.AUDITOR and caller.org == AUDIT_ORG


def is_citizen(caller: Caller) -> bool:
    """A citizen credential issued by CivilAffairs."""
    return caller.kind == IdentityKind.CITIZEN and caller.org == CIVIL_AFFAIRS_ORG


def require_admin(caller: Caller) -> None:
    if not is_admin(caller):
        raise Forbidden(f"only a department admin may do this; the caller is a {caller.kind}")


def require_auditor(caller: Caller) -> None:
    if not is_auditor(caller):
        raise Forbidden(f"only an auditor of the {AUDIT_ORG} department may do this")


def require_citizen(caller: Caller) -> None:
    if not is_citizen(caller):
        raise Forbidden(f"only a citizen with a {CIVIL_AFFAIRS_ORG} credential may do this")


def require_requester(caller: Caller) -> None:
    """Access requests come from officers; auditors may ask too (the guard denies and logs it)."""
    if caller.kind not in (IdentityKind.OFFICER, IdentityKind.AUDITOR):
        raise Forbidden(f"only officers request access to records; the caller is a {caller.kind}")


def require_registrar(caller: Caller, owner_org: str, record_type: str) -> None:
    """A registrar (client with role ``registrar``) of the department owning ``record_type``."""
    if caller.kind != IdentityKind.OFFICER or caller.role != REGISTRAR_ROLE:
        raise Forbidden("only a registrar may register or amend records", code="not_registrar")
    if caller.org != owner_org:
        raise Forbidden(
            f"{record_type} records are owned by {owner_org}; a {caller.org} registrar may not"
            " register or amend them",
            code="not_owner_department",
        )


def require_eraser(caller: Caller, owner_org: str, record_id: str) -> None:
    """A registrar or an admin of the department that owns the record (PIPL Art. 47 erasure).

    Erasure destroys the owner's payload, so only the owner decides it; the
    ledger keeps who did it, when, and the record's hashes and access history.
    """
    registrar = caller.kind == IdentityKind.OFFICER and caller.role == REGISTRAR_ROLE
    if not (registrar or is_admin(caller)):
        raise Forbidden(
            "only a registrar or a department admin may erase records", code="erase_forbidden"
        )
    if caller.org != owner_org:
        raise Forbidden(
            f"record {record_id} is owned by {owner_org}; a {caller.org} identity may not erase it",
            code="not_owner_department",
        )


def require_citizen_registrar(caller: Caller) -> None:
    if (
        caller.org != CIVIL_AFFAIRS_ORG
        or caller.kind != IdentityKind.OFFICER
        or caller.role != REGISTRAR_ROLE
    ):
        raise Forbidden(
            f"only a {CIVIL_AFFAIRS_ORG} registrar binds citizen credentials", code="not_registrar"
        )


def _principal(caller: Caller) -> Principal:
    try:
        if is_admin(caller):
            return Principal(
                officer_id=f"{caller.msp_id}:{caller.fingerprint}",
                org=caller.org,
                role=ADMIN_ROLE,
                region=caller.region or UNSCOPED_REGION,
                clearance=0,
            )
        return caller.principal()
    except PolicyRequestError as exc:
        raise Forbidden(
            f"the caller's certificate lacks usable role, region or clearance ({exc.message})",
            code="attributes_invalid",
        ) from None


def officer_principal(caller: Caller) -> Principal:
    """The Cedar principal of an officer or auditor asking for records."""
    return _principal(caller)


def check_register(caller: Caller, resource: RecordResource, policies: PolicySet) -> Decision:
    """Cedar ``register``: raise unless the anchored policy permits it; return the decision."""
    decision = policies.evaluate(
        AccessRequest(
            principal=_principal(caller),
            action=Action.REGISTER,
            resource=resource,
            context=AccessContext(purpose="service_delivery"),
        )
    )
    if not decision.allowed:
        raise Forbidden(
            f"the anchored policy does not let this registrar register {resource.record_type}"
            f" records of region {resource.region} ({decision.reason})",
            code="register_denied",
        )
    return decision


def may_read_events(caller: Caller, department: str, policies: PolicySet) -> bool:
    """Cedar ``read_events`` on the access log of ``department`` (``"*"``: all departments)."""
    if caller.kind in (IdentityKind.CITIZEN, IdentityKind.PEER, IdentityKind.ORDERER):
        return False
    request = AccessRequest(
        principal=_principal(caller),
        action=Action.READ_EVENTS,
        resource=AccessLogResource(department),
        context=AccessContext(purpose=AUDIT_PURPOSE),
    )
    return policies.evaluate(request).allowed


def require_read_events(caller: Caller, department: str, policies: PolicySet) -> None:
    if not may_read_events(caller, department, policies):
        scope = "every department" if department == ALL_DEPARTMENTS else department
        raise Forbidden(
            f"the anchored policy does not let the caller read the access log of {scope}"
        )


def may_view_record(
    caller: Caller, owner_org: str, subject: str, citizen_subject: str | None
) -> bool:
    """Record metadata (T0): the owning department, auditors, and the subject's own citizen."""
    if is_citizen(caller):
        return citizen_subject is not None and citizen_subject == subject
    return caller.org == owner_org or is_auditor(caller)
