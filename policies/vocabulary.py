"""The fixed vocabulary shared by the catalogue, the Cedar policies and their callers.

Tiers are ordered: reading tier ``Tn`` of a record releases the fields of every
tier up to and including ``Tn`` (see ``docs/policies.md``). Departments, roles
and purposes are the strings the default Cedar policy set compares against;
keeping them here lets the chaincode and the gateway validate input against the
same list the policies were written for.
"""

from __future__ import annotations

from typing import Final

from policies.errors import PolicyRequestError

#: Data tiers, lowest first: metadata, basic, sensitive, restricted.
TIERS: Final = ("T0", "T1", "T2", "T3")

#: Departments (organisations) of the consortium, as named in network.yaml.
ORGS: Final = (
    "PublicSecurity",
    "HRSS",
    "Housing",
    "Education",
    "Health",
    "Tax",
    "CivilAffairs",
    "Audit",
)

#: Officer roles the default policy set gives meaning to.
ROLES: Final = (
    "registrar",
    "caseworker",
    "enrolment_officer",
    "social_security_officer",
    "labour_inspector",
    "hukou_officer",
    "investigator",
    "medical_settlement_officer",
    "emergency_physician",
    "auditor",
    "department_admin",
)

#: Purposes of access the default policy set recognises.
PURPOSES: Final = (
    "service_delivery",
    "school_enrolment",
    "social_insurance_transfer",
    "points_hukou",
    "medical_settlement",
    "wage_arrears",
    "criminal_investigation",
    "emergency_care",
    "audit",
)


def tier_rank(tier: str) -> int:
    """Return the position of ``tier`` in :data:`TIERS` (``"T2"`` -> 2)."""
    try:
        return TIERS.index(tier)
    except ValueError:
        raise PolicyRequestError(
            f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}"
        ) from None


def tiers_up_to(tier: str) -> tuple[str, ...]:
    """Return the tiers released by a grant at ``tier`` (``"T1"`` -> ``("T0", "T1")``)."""
    return TIERS[: tier_rank(tier) + 1]
