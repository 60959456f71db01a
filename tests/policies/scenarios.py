"""The DESIGN.md section 7 scenarios as a table: each permit and its near misses.

Shared by the engine tests; kept free of pytest so other packages' tests (the
chaincode's) can reuse the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.requests import (
    ALL_DEPARTMENTS,
    AccessContext,
    AccessLogResource,
    AccessRequest,
    Action,
    Principal,
    RecordResource,
    Resource,
)

SHENZHEN, GUANGZHOU, CHENGDU = "440300", "440100", "510100"

OWNERS = {
    "residence_permit": "PublicSecurity",
    "social_insurance": "HRSS",
    "employment_contract": "HRSS",
    "housing_rental": "Housing",
    "student_record": "Education",
    "health_record": "Health",
    "tax_record": "Tax",
}


def officer(org: str, role: str, region: str = SHENZHEN, clearance: int = 2) -> Principal:
    return Principal(f"{org.lower()}.{role}.{region}.c{clearance}", org, role, region, clearance)


def rec(
    record_type: str, tier: str, region: str = SHENZHEN, owner: str | None = None
) -> RecordResource:
    owner_org = owner or OWNERS[record_type]
    return RecordResource(
        record_id=f"rec-{record_type}-{owner_org}-{region}",
        owner_org=owner_org,
        record_type=record_type,
        tier=tier,
        region=region,
    )


def ctx(
    purpose: str, case_ref: str | None = None, consent: bool = False, emergency: bool = False
) -> AccessContext:
    return AccessContext(purpose, case_ref=case_ref, has_consent=consent, emergency=emergency)


@dataclass(frozen=True)
class Case:
    name: str
    principal: Principal
    action: Action
    resource: Resource
    context: AccessContext
    allowed: bool
    policy_ids: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()

    def request(self) -> AccessRequest:
        return AccessRequest(self.principal, self.action, self.resource, self.context)


READ, EMERGENCY, REGISTER, EVENTS = (
    Action.READ,
    Action.EMERGENCY_READ,
    Action.REGISTER,
    Action.READ_EVENTS,
)
DENY: tuple[str, ...] = ()
CAP = ("guard.clearance_cap",)
NO_AUDITOR = ("guard.auditors_never_read_payloads",)
REVIEW = ("review_required",)

EDU = officer("Education", "enrolment_officer", clearance=1)
SSO = officer("HRSS", "social_security_officer", GUANGZHOU, 2)
HUKOU = officer("PublicSecurity", "hukou_officer", SHENZHEN, 3)
MED = officer("Health", "medical_settlement_officer", SHENZHEN, 3)
ER = officer("Health", "emergency_physician", SHENZHEN, 3)
INSPECTOR = officer("HRSS", "labour_inspector", SHENZHEN, 3)
INVESTIGATOR = officer("PublicSecurity", "investigator", GUANGZHOU, 3)
CASEWORKER = officer("Housing", "caseworker", SHENZHEN, 3)
AUDITOR = officer("Audit", "auditor", "110000", 3)
HRSS_ADMIN = officer("HRSS", "department_admin", SHENZHEN, 0)
CASE = "SZ-LJ-2025-0173"

SCHOOL = "school_enrolment.read_basic"
TRANSFER = "social_insurance_transfer.read_sensitive"
HUKOU_P = "points_hukou.read_with_consent"
MED_T2 = "medical_settlement.read_sensitive"
MED_T3 = "medical_settlement.read_restricted_with_consent"
WAGE = "wage_arrears.read_with_case"
CRIME = "criminal_investigation.read_with_case"
OWNER = "owner.read_own_records"
GLASS_CARE = "break_glass.emergency_care"
GLASS_LIFE = "break_glass.threat_to_life"

CASES: list[Case] = [
    # School enrolment: Education reads T1 residence, housing, social insurance in its region.
    Case(
        "school: residence T1",
        EDU,
        READ,
        rec("residence_permit", "T1"),
        ctx("school_enrolment"),
        True,
        (SCHOOL,),
    ),
    Case(
        "school: housing T1",
        EDU,
        READ,
        rec("housing_rental", "T1"),
        ctx("school_enrolment"),
        True,
        (SCHOOL,),
    ),
    Case(
        "school: social insurance T0",
        EDU,
        READ,
        rec("social_insurance", "T0"),
        ctx("school_enrolment"),
        True,
        (SCHOOL,),
    ),
    Case(
        "school: wrong region",
        EDU,
        READ,
        rec("residence_permit", "T1", GUANGZHOU),
        ctx("school_enrolment"),
        False,
    ),
    Case(
        "school: tier too high",
        officer("Education", "enrolment_officer", clearance=3),
        READ,
        rec("residence_permit", "T2"),
        ctx("school_enrolment"),
        False,
    ),
    Case(
        "school: wrong record type",
        EDU,
        READ,
        rec("health_record", "T1"),
        ctx("school_enrolment"),
        False,
    ),
    Case(
        "school: wrong purpose",
        EDU,
        READ,
        rec("residence_permit", "T1"),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "school: wrong org",
        officer("Tax", "enrolment_officer"),
        READ,
        rec("housing_rental", "T1"),
        ctx("school_enrolment"),
        False,
    ),
    Case(
        "school: above clearance",
        officer("Education", "enrolment_officer", clearance=0),
        READ,
        rec("residence_permit", "T1"),
        ctx("school_enrolment"),
        False,
        CAP,
    ),
    # Social-insurance transfer: HRSS social-security officers read T2 from any region.
    Case(
        "transfer: T2 other region",
        SSO,
        READ,
        rec("social_insurance", "T2", CHENGDU),
        ctx("social_insurance_transfer"),
        True,
        (TRANSFER,),
    ),
    Case(
        "transfer: T3",
        officer("HRSS", "social_security_officer", GUANGZHOU, 3),
        READ,
        rec("social_insurance", "T3", CHENGDU),
        ctx("social_insurance_transfer"),
        False,
    ),
    Case(
        "transfer: wrong record type",
        SSO,
        READ,
        rec("employment_contract", "T2", CHENGDU),
        ctx("social_insurance_transfer"),
        False,
    ),
    Case(
        "transfer: wrong role",
        officer("HRSS", "labour_inspector", GUANGZHOU),
        READ,
        rec("social_insurance", "T2", CHENGDU),
        ctx("social_insurance_transfer"),
        False,
    ),
    Case(
        "transfer: wrong org",
        officer("Tax", "social_security_officer", GUANGZHOU),
        READ,
        rec("social_insurance", "T2", CHENGDU),
        ctx("social_insurance_transfer"),
        False,
    ),
    Case(
        "transfer: wrong purpose",
        SSO,
        READ,
        rec("social_insurance", "T2", CHENGDU),
        ctx("points_hukou", consent=True),
        False,
    ),
    # Points-based hukou: public security reads T2 tax/SI/residence/housing with consent.
    Case(
        "hukou: tax T2 consent",
        HUKOU,
        READ,
        rec("tax_record", "T2"),
        ctx("points_hukou", consent=True),
        True,
        (HUKOU_P,),
    ),
    Case(
        "hukou: housing T2 consent other region",
        HUKOU,
        READ,
        rec("housing_rental", "T2", CHENGDU),
        ctx("points_hukou", consent=True),
        True,
        (HUKOU_P,),
    ),
    Case(
        "hukou: social insurance T1 consent",
        HUKOU,
        READ,
        rec("social_insurance", "T1"),
        ctx("points_hukou", consent=True),
        True,
        (HUKOU_P,),
    ),
    Case(
        "hukou: residence T2 consent",
        HUKOU,
        READ,
        rec("residence_permit", "T2"),
        ctx("points_hukou", consent=True),
        True,
        (HUKOU_P,),
    ),
    Case(
        "hukou: missing consent", HUKOU, READ, rec("tax_record", "T2"), ctx("points_hukou"), False
    ),
    Case(
        "hukou: T3", HUKOU, READ, rec("tax_record", "T3"), ctx("points_hukou", consent=True), False
    ),
    Case(
        "hukou: health record",
        HUKOU,
        READ,
        rec("health_record", "T2"),
        ctx("points_hukou", consent=True),
        False,
    ),
    Case(
        "hukou: wrong role",
        officer("PublicSecurity", "investigator", SHENZHEN),
        READ,
        rec("tax_record", "T2"),
        ctx("points_hukou", consent=True),
        False,
    ),
    # Remote medical settlement: Health reads T2; T3 only with consent or break-glass.
    Case(
        "medical: health T2",
        MED,
        READ,
        rec("health_record", "T2", CHENGDU),
        ctx("medical_settlement"),
        True,
        (MED_T2,),
    ),
    Case(
        "medical: social insurance T2",
        MED,
        READ,
        rec("social_insurance", "T2", CHENGDU),
        ctx("medical_settlement"),
        True,
        (MED_T2,),
    ),
    Case(
        "medical: T3 without consent",
        MED,
        READ,
        rec("health_record", "T3", CHENGDU),
        ctx("medical_settlement"),
        False,
    ),
    Case(
        "medical: T3 with consent",
        MED,
        READ,
        rec("health_record", "T3", CHENGDU),
        ctx("medical_settlement", consent=True),
        True,
        (MED_T3,),
    ),
    Case(
        "medical: social insurance T3 with consent",
        MED,
        READ,
        rec("social_insurance", "T3", CHENGDU),
        ctx("medical_settlement", consent=True),
        False,
    ),
    Case(
        "medical: tax record", MED, READ, rec("tax_record", "T2"), ctx("medical_settlement"), False
    ),
    Case(
        "medical: wrong org",
        officer("HRSS", "medical_settlement_officer"),
        READ,
        rec("health_record", "T2"),
        ctx("medical_settlement"),
        False,
    ),
    # Break-glass: permitted for specific roles, always flagged for review.
    Case(
        "glass: emergency physician T3",
        ER,
        EMERGENCY,
        rec("health_record", "T3", CHENGDU),
        ctx("emergency_care", emergency=True),
        True,
        (GLASS_CARE,),
        REVIEW,
    ),
    Case(
        "glass: settlement officer T3",
        MED,
        EMERGENCY,
        rec("health_record", "T3", CHENGDU),
        ctx("emergency_care", emergency=True),
        True,
        (GLASS_CARE,),
        REVIEW,
    ),
    Case(
        "glass: emergency flag missing",
        ER,
        EMERGENCY,
        rec("health_record", "T3", CHENGDU),
        ctx("emergency_care"),
        False,
    ),
    Case(
        "glass: plain read is not break-glass",
        ER,
        READ,
        rec("health_record", "T3", CHENGDU),
        ctx("emergency_care", emergency=True),
        False,
    ),
    Case(
        "glass: wrong record type",
        ER,
        EMERGENCY,
        rec("tax_record", "T2"),
        ctx("emergency_care", emergency=True),
        False,
    ),
    Case(
        "glass: role without break-glass",
        officer("Health", "caseworker", clearance=3),
        EMERGENCY,
        rec("health_record", "T3"),
        ctx("emergency_care", emergency=True),
        False,
    ),
    Case(
        "glass: wrong org",
        officer("Education", "emergency_physician", clearance=3),
        EMERGENCY,
        rec("health_record", "T3"),
        ctx("emergency_care", emergency=True),
        False,
    ),
    Case(
        "glass: clearance still caps",
        officer("Health", "emergency_physician", clearance=2),
        EMERGENCY,
        rec("health_record", "T3"),
        ctx("emergency_care", emergency=True),
        False,
        CAP,
    ),
    Case(
        "glass: investigator threat to life",
        INVESTIGATOR,
        EMERGENCY,
        rec("residence_permit", "T2", SHENZHEN),
        ctx("criminal_investigation", emergency=True),
        True,
        (GLASS_LIFE,),
        REVIEW,
    ),
    Case(
        "glass: investigator T3",
        INVESTIGATOR,
        EMERGENCY,
        rec("health_record", "T3"),
        ctx("criminal_investigation", emergency=True),
        False,
    ),
    # Wage arrears: labour inspectors read T2 employment contracts with a case reference.
    Case(
        "wage: contract T2 with case",
        INSPECTOR,
        READ,
        rec("employment_contract", "T2"),
        ctx("wage_arrears", case_ref=CASE),
        True,
        (WAGE,),
    ),
    Case(
        "wage: missing case reference",
        INSPECTOR,
        READ,
        rec("employment_contract", "T2"),
        ctx("wage_arrears"),
        False,
    ),
    Case(
        "wage: blank case reference",
        INSPECTOR,
        READ,
        rec("employment_contract", "T2"),
        ctx("wage_arrears", case_ref="   "),
        False,
    ),
    Case(
        "wage: wrong region",
        INSPECTOR,
        READ,
        rec("employment_contract", "T2", GUANGZHOU),
        ctx("wage_arrears", case_ref=CASE),
        False,
    ),
    Case(
        "wage: T3",
        INSPECTOR,
        READ,
        rec("employment_contract", "T3"),
        ctx("wage_arrears", case_ref=CASE),
        False,
    ),
    Case(
        "wage: wrong record type",
        INSPECTOR,
        READ,
        rec("social_insurance", "T2"),
        ctx("wage_arrears", case_ref=CASE),
        False,
    ),
    # Criminal investigation: T2 with a case reference, any type, any region.
    Case(
        "crime: tax T2 with case",
        INVESTIGATOR,
        READ,
        rec("tax_record", "T2", SHENZHEN),
        ctx("criminal_investigation", case_ref=CASE),
        True,
        (CRIME,),
    ),
    Case(
        "crime: health T2 with case",
        INVESTIGATOR,
        READ,
        rec("health_record", "T2", CHENGDU),
        ctx("criminal_investigation", case_ref=CASE),
        True,
        (CRIME,),
    ),
    Case(
        "crime: missing case reference",
        INVESTIGATOR,
        READ,
        rec("tax_record", "T2"),
        ctx("criminal_investigation"),
        False,
    ),
    Case(
        "crime: T3",
        INVESTIGATOR,
        READ,
        rec("tax_record", "T3"),
        ctx("criminal_investigation", case_ref=CASE),
        False,
    ),
    Case(
        "crime: wrong purpose",
        INVESTIGATOR,
        READ,
        rec("tax_record", "T2"),
        ctx("wage_arrears", case_ref=CASE),
        False,
    ),
    Case(
        "crime: wrong org",
        officer("Tax", "investigator"),
        READ,
        rec("tax_record", "T2"),
        ctx("criminal_investigation", case_ref=CASE),
        False,
    ),
    # Owner departments read their own records, up to clearance, in their region.
    Case(
        "owner: T3 own record",
        CASEWORKER,
        READ,
        rec("housing_rental", "T3"),
        ctx("service_delivery"),
        True,
        (OWNER,),
    ),
    Case(
        "owner: registrar reads",
        officer("Tax", "registrar", clearance=1),
        READ,
        rec("tax_record", "T1"),
        ctx("service_delivery"),
        True,
        (OWNER,),
    ),
    Case(
        "owner: other region",
        CASEWORKER,
        READ,
        rec("housing_rental", "T1", GUANGZHOU),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "owner: above clearance",
        officer("Housing", "caseworker", clearance=2),
        READ,
        rec("housing_rental", "T3"),
        ctx("service_delivery"),
        False,
        CAP,
    ),
    Case(
        "owner: other department's record",
        CASEWORKER,
        READ,
        rec("tax_record", "T1"),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "owner: wrong purpose", CASEWORKER, READ, rec("housing_rental", "T1"), ctx("audit"), False
    ),
    Case(
        "owner: specialised role",
        officer("HRSS", "labour_inspector"),
        READ,
        rec("employment_contract", "T1"),
        ctx("service_delivery"),
        False,
    ),
    # Auditors read access events, never payloads; admins read their department's events.
    Case(
        "audit: all events",
        AUDITOR,
        EVENTS,
        AccessLogResource(ALL_DEPARTMENTS),
        ctx("audit"),
        True,
        ("audit.auditors_read_access_events",),
    ),
    Case(
        "audit: one department",
        AUDITOR,
        EVENTS,
        AccessLogResource("HRSS"),
        ctx("audit"),
        True,
        ("audit.auditors_read_access_events",),
    ),
    Case(
        "audit: wrong purpose",
        AUDITOR,
        EVENTS,
        AccessLogResource("HRSS"),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "audit: no payload T0",
        AUDITOR,
        READ,
        rec("tax_record", "T0"),
        ctx("audit"),
        False,
        NO_AUDITOR,
    ),
    Case(
        "audit: no payload even as caseworker",
        officer("Audit", "caseworker", clearance=3),
        READ,
        rec("tax_record", "T1"),
        ctx("service_delivery"),
        False,
        NO_AUDITOR,
    ),
    Case(
        "audit: no break-glass",
        AUDITOR,
        EMERGENCY,
        rec("health_record", "T2"),
        ctx("emergency_care", emergency=True),
        False,
        NO_AUDITOR,
    ),
    Case(
        "audit: auditor role in another org still no payload",
        officer("Tax", "auditor", clearance=3),
        READ,
        rec("tax_record", "T1"),
        ctx("service_delivery"),
        False,
        NO_AUDITOR,
    ),
    Case(
        "admin: own department events",
        HRSS_ADMIN,
        EVENTS,
        AccessLogResource("HRSS"),
        ctx("audit"),
        True,
        ("audit.admins_read_own_department_events",),
    ),
    Case(
        "admin: other department events",
        HRSS_ADMIN,
        EVENTS,
        AccessLogResource("Tax"),
        ctx("audit"),
        False,
    ),
    Case(
        "admin: all departments",
        HRSS_ADMIN,
        EVENTS,
        AccessLogResource(ALL_DEPARTMENTS),
        ctx("audit"),
        False,
    ),
    Case(
        "events: plain officer",
        CASEWORKER,
        EVENTS,
        AccessLogResource("Housing"),
        ctx("audit"),
        False,
    ),
    # Registration: registrars register their own department's types in their region.
    Case(
        "register: HRSS employment contract",
        officer("HRSS", "registrar"),
        REGISTER,
        rec("employment_contract", "T0"),
        ctx("service_delivery"),
        True,
        ("register.hrss",),
    ),
    Case(
        "register: other department's type",
        officer("HRSS", "registrar"),
        REGISTER,
        rec("residence_permit", "T0"),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "register: type mislabelled as own",
        officer("HRSS", "registrar"),
        REGISTER,
        rec("residence_permit", "T0", owner="HRSS"),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "register: other region",
        officer("HRSS", "registrar"),
        REGISTER,
        rec("social_insurance", "T0", GUANGZHOU),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "register: not a registrar",
        officer("HRSS", "caseworker"),
        REGISTER,
        rec("social_insurance", "T0"),
        ctx("service_delivery"),
        False,
    ),
    # Unknown roles are denied by default, even in their own department.
    Case(
        "unknown role: own record",
        officer("Housing", "janitor", clearance=3),
        READ,
        rec("housing_rental", "T1"),
        ctx("service_delivery"),
        False,
    ),
    Case(
        "unknown role: scenario purpose",
        officer("Education", "teacher", clearance=3),
        READ,
        rec("residence_permit", "T1"),
        ctx("school_enrolment"),
        False,
    ),
    Case("unknown purpose", CASEWORKER, READ, rec("housing_rental", "T1"), ctx("curiosity"), False),
]
