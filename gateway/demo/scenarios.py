"""The demo's stream of cross-agency accesses: who asks what about whom, and why.

Each scenario is one of DESIGN.md's cross-agency services (or a way of
getting it wrong) played by a demo officer whose role, region and clearance
make the default Cedar policy set decide it one way:

=========================== ===================== ==========================================
scenario                    officer               expected decision
=========================== ===================== ==========================================
school_enrolment            Education, Shenzhen   granted (T1 permit, rental, insurance)
enrolment_overreach         Education, Shenzhen   denied (T2 is above clearance 1)
enrolment_with_tax          Education, Shenzhen   partial (tax records are not for enrolment)
wrong_region                Education, Chengdu    denied (records are in Shenzhen)
insurance_transfer          HRSS, Chengdu         granted (T2 social insurance, any region)
medical_settlement          Health, Shenzhen      granted (T2 health record)
restricted_without_consent  Health, Shenzhen      denied (T3 needs consent or break-glass)
break_glass                 emergency physician   granted, flagged, open for review
wage_arrears                labour inspector      granted (T2 contract, case reference)
wage_arrears_no_case        labour inspector      denied (no case reference)
criminal_investigation      investigator          granted (T2, case reference)
investigation_no_case       investigator          denied
owner_service               Tax caseworker        granted (own department, own region)
points_hukou                hukou officer         granted with the citizen's consent, else denied
=========================== ===================== ==========================================

Household scenarios apply to every ``every``-th household (from ``offset``),
so even a five-person demo shows each kind of outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gateway.demo.population import CHENGDU, Household, Person

HUKOU_TYPES: Final = ("tax_record", "social_insurance", "residence_permit", "housing_rental")
ENROLMENT_TYPES: Final = ("residence_permit", "housing_rental", "social_insurance")
EMERGENCY_NOTE: Final = "患者昏迷送至急诊，需要查阅既往病史与过敏史（急诊室值班记录）"

_EDU_SZ = "officer.education.sz1"
_EDU_CD = "officer.education.cd1"
_HRSS_CD = "officer.hrss.cd1"
_INSPECTOR = "officer.hrss.sz2"
_SETTLEMENT = "officer.health.sz1"
_PHYSICIAN = "officer.health.sz2"
_INVESTIGATOR = "officer.publicsecurity.sz2"
_HUKOU = "officer.publicsecurity.sz1"
_TAX = "officer.tax.sz1"


@dataclass(frozen=True)
class PlannedAccess:
    """One access request the demo makes."""

    label: str
    officer: str
    person: Person
    record_types: tuple[str, ...]
    tier: str
    purpose: str
    case_ref: str | None = None
    justification: str | None = None


_WITH_TAX = ("residence_permit", "social_insurance", "tax_record")
_INVESTIGATED = ("residence_permit", "housing_rental")
_HEALTH = ("health_record",)
_CRIMINAL = "criminal_investigation"

#: (label, every, offset, officer, record types, tier, purpose) about a household's head.
# fmt: off
_HEAD_SCENARIOS: Final[tuple[tuple[str, int, int, str, tuple[str, ...], str, str], ...]] = (
    ("enrolment_overreach", 4, 0, _EDU_SZ, ("residence_permit",), "T2", "school_enrolment"),
    ("enrolment_with_tax", 4, 2, _EDU_SZ, _WITH_TAX, "T1", "school_enrolment"),
    ("wrong_region", 6, 0, _EDU_CD, ("residence_permit",), "T1", "school_enrolment"),
    ("wage_arrears", 3, 0, _INSPECTOR, ("employment_contract",), "T2", "wage_arrears"),
    ("wage_arrears_no_case", 7, 1, _INSPECTOR, ("employment_contract",), "T2", "wage_arrears"),
    ("restricted_without_consent", 5, 2, _SETTLEMENT, _HEALTH, "T3", "medical_settlement"),
    ("break_glass", 8, 0, _PHYSICIAN, _HEALTH, "T3", "emergency_care"),
    ("criminal_investigation", 9, 4, _INVESTIGATOR, _INVESTIGATED, "T2", _CRIMINAL),
    ("investigation_no_case", 10, 5, _INVESTIGATOR, _INVESTIGATED[:1], "T2", _CRIMINAL),
    ("owner_service", 5, 1, _TAX, ("tax_record",), "T2", "service_delivery"),
)
# fmt: on
#: Scenarios that carry a case reference, with its prefix.
_CASES: Final = {"wage_arrears": "WA", "criminal_investigation": "SZGA"}


def plan_accesses(
    households: Sequence[Household],
    citizens: Mapping[str, Person],
    held: Mapping[str, set[str]],
    *,
    year: int,
    hukou_applicants: Sequence[str],
) -> list[PlannedAccess]:
    """Every access request of the demo, skipping those about records a person does not have.

    ``held`` maps identity numbers to the record types registered for them;
    ``hukou_applicants`` are the citizens (names in ``citizens``) who applied
    for points-based hukou, about whom the hukou officer asks.
    """
    plan: list[PlannedAccess] = []

    def ask(planned: PlannedAccess) -> None:
        if set(planned.record_types) & held.get(planned.person.identity_number, set()):
            plan.append(planned)

    for index, household in enumerate(households):
        head = household.head
        if household.children:
            ask(
                PlannedAccess(
                    "school_enrolment", _EDU_SZ, head, ENROLMENT_TYPES, "T1", "school_enrolment"
                )
            )
        for label, every, offset, officer, types, tier, purpose in _HEAD_SCENARIOS:
            if index % every != offset:
                continue
            prefix = _CASES.get(label)
            case_ref = f"{prefix}-{year}-{index:05d}" if prefix else None
            note = EMERGENCY_NOTE if label == "break_glass" else None
            ask(PlannedAccess(label, officer, head, types, tier, purpose, case_ref, note))
        if household.origin.code == CHENGDU:
            for adult in household.adults:
                ask(
                    PlannedAccess(
                        "insurance_transfer",
                        _HRSS_CD,
                        adult,
                        ("social_insurance",),
                        "T2",
                        "social_insurance_transfer",
                    )
                )
                ask(
                    PlannedAccess(
                        "medical_settlement",
                        _SETTLEMENT,
                        adult,
                        ("health_record",),
                        "T2",
                        "medical_settlement",
                    )
                )
    for name in hukou_applicants:
        ask(
            PlannedAccess("points_hukou", _HUKOU, citizens[name], HUKOU_TYPES, "T2", "points_hukou")
        )
    return plan


def hukou_lookup(person: Person, label: str = "points_hukou") -> PlannedAccess:
    """The hukou officer's scoring lookup about ``person``."""
    return PlannedAccess(label, _HUKOU, person, HUKOU_TYPES, "T2", "points_hukou")


def wage_case(person: Person, year: int) -> PlannedAccess:
    """A labour inspector's lookup about ``person`` for a wage-arrears case."""
    return PlannedAccess(
        "wage_arrears",
        _INSPECTOR,
        person,
        ("employment_contract", "residence_permit"),
        "T2",
        "wage_arrears",
        f"WA-{year}-09999",
    )
