"""Who may run operator jobs: the authorisation decisions behind the operator endpoints.

Operator jobs (rotating a department's custodian key, submitting channel
configuration updates) change how the whole consortium works, so they are
reserved to **admin** identities -- the certificates a department's CA
issues with the Fabric NodeOU ``admin``, exactly the identities Fabric's own
``Admins`` policies accept. The decision is made here, never inline in a
route, and a refusal is a typed error with a stable ``code`` that the
gateway answers as ``403`` problem+json and the CLI as one line.
"""

from __future__ import annotations

from crypto.identity import Identity, IdentityKind
from policies.errors import PolicyError


class OperatorForbidden(PolicyError):
    """The caller may not run this operator job."""

    code = "operator_forbidden"


class NotAdmin(OperatorForbidden):
    """The caller is not an admin identity."""

    code = "not_admin"


class NotDepartmentAdmin(OperatorForbidden):
    """The caller is an admin, but of another department."""

    code = "not_department_admin"


def require_admin(caller: Identity) -> None:
    """Raise :class:`NotAdmin` unless ``caller`` is an admin identity of some organisation."""
    if caller.kind != IdentityKind.ADMIN:
        raise NotAdmin(
            f"only an admin identity may do this; {caller.name} is a {caller.kind} of {caller.org}"
        )


def require_department_admin(caller: Identity, org: str) -> None:
    """Raise unless ``caller`` is an admin of department ``org``.

    :class:`NotAdmin` for a non-admin caller, :class:`NotDepartmentAdmin` for
    an admin of another department.
    """
    require_admin(caller)
    if caller.org != org:
        raise NotDepartmentAdmin(
            f"only an admin of {org} may do this; {caller.name} is an admin of {caller.org}"
        )


__all__ = [
    "NotAdmin",
    "NotDepartmentAdmin",
    "OperatorForbidden",
    "require_admin",
    "require_department_admin",
]
