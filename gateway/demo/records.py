"""Record payloads for the synthetic population, valid against the default catalogue.

One builder per record type, each producing the complete ``fields`` object
a registrar submits (every field the catalogue knows, with realistic
values: dates that follow each other, wages and contribution months that
agree across records, Shenzhen addresses, employers with well-formed unified
social credit codes). The caller registers them through the SDK; nothing
here talks to the gateway.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from gateway.demo.population import CHENGDU, DISTRICTS, SHENZHEN, SURNAMES, Household, Person

#: Characters of a GB 32100 unified social credit code, by value (0..30).
_USCC_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_BRANDS: Final = ("粤海", "南岭", "鹏远", "海润", "嘉禾", "盛达", "天宇", "明辉", "瑞丰", "安泰")
_INDUSTRIES: Final = (
    ("电子科技有限公司", ("装配工", "质检员", "设备维修工", "仓库管理员")),
    ("精密制造有限公司", ("数控车工", "装配工", "模具工")),
    ("物流有限公司", ("快递员", "分拣员", "货车司机")),
    ("建筑工程有限公司", ("钢筋工", "木工", "电工", "施工员")),
    ("餐饮管理有限公司", ("厨师", "服务员", "店长")),
    ("物业管理有限公司", ("保安员", "保洁员", "维修工")),
    ("家政服务有限公司", ("家政服务员", "育婴员")),
)
_CONDITIONS: Final = ("E11.9", "I10", "J45.9", "K29.5", "M54.5")


def uscc(region: str, rnd: random.Random) -> str:
    """A unified social credit code (GB 32100) with a correct check character."""
    body = "91" + region + "".join(rnd.choice(_USCC_CHARS) for _ in range(9))
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_CHARS[(31 - total % 31) % 31]


def money(amount: float) -> str:
    """A CNY amount as the catalogue writes it: ``1234.50``."""
    return f"{max(amount, 0):.2f}"


def phone(rnd: random.Random) -> str:
    return f"1{rnd.choice('3456789')}{rnd.randrange(10**9):09d}"


def plus_years(day: date, years: int) -> date:
    """``day`` moved by ``years`` (29 February becomes 28 February in other years)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _months_between(start: date, end: date) -> int:
    return max(0, (end.year - start.year) * 12 + end.month - start.month)


def _last_month_end(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


@dataclass(frozen=True)
class Job:
    """An adult's employment in Shenzhen, shared by their contract, insurance and tax records."""

    employer: str
    employer_code: str
    title: str
    monthly_wage: float
    started_on: date
    work_address: str


def job_for(person: Person, household: Household, rnd: random.Random, today: date) -> Job | None:
    """The person's job, or None (about one adult in ten is not formally employed)."""
    if rnd.random() < 0.1:
        return None
    industry, titles = rnd.choice(_INDUSTRIES)
    _, district, streets = rnd.choice(DISTRICTS)
    earliest = max(household.arrived_on, today - timedelta(days=6 * 365))
    span = max(1, (today - timedelta(days=45) - earliest).days)
    return Job(
        employer=f"深圳市{rnd.choice(_BRANDS)}{industry}",
        employer_code=uscc(SHENZHEN, rnd),
        title=rnd.choice(titles),
        monthly_wage=round(rnd.uniform(4800, 14000) / 100) * 100,
        started_on=earliest + timedelta(days=rnd.randrange(span)),
        work_address=f"广东省深圳市{district}{rnd.choice(streets)}工业路{rnd.randrange(1, 99)}号",
    )


def residence_permit(
    person: Person, household: Household, job: Job | None, rnd: random.Random, today: date
) -> dict[str, Any]:
    valid_from = today - timedelta(days=rnd.randrange(30, 1000))
    valid_to = plus_years(valid_from, 3) - timedelta(days=1)
    endorsements = [
        plus_years(valid_from, n) + timedelta(days=rnd.randrange(0, 20)) for n in (1, 2)
    ]
    return {
        "issuing_city_code": SHENZHEN,
        "issuing_authority_code": f"{household.district_code}{rnd.randrange(1, 40):02d}0000",
        "status": "valid" if valid_to >= today else "expired",
        "valid_from": valid_from.isoformat(),
        "valid_to": valid_to.isoformat(),
        "permit_number": f"{SHENZHEN}{valid_from.year}{rnd.randrange(10**7):07d}",
        "holder_name": person.name,
        "hukou_region_code": person.birth_county,
        "residence_district_code": household.district_code,
        "residence_since": household.arrived_on.isoformat(),
        "residence_reason": "employment" if job else "family",
        "annual_endorsements": [d.isoformat() for d in endorsements if d <= today],
        "residence_address": household.address,
        "contact_phone": phone(rnd),
        "holder_identity_number": person.identity_number,
    }


def _scheme(months: int, in_city: int, first: date, last: date) -> dict[str, Any]:
    return {
        "months_contributed": months,
        "months_in_city": in_city,
        "first_month": f"{first:%Y-%m}",
        "last_month": f"{last:%Y-%m}",
        "status": "contributing",
    }


def social_insurance(
    person: Person, household: Household, job: Job, rnd: random.Random, today: date
) -> dict[str, Any]:
    last = _last_month_end(today)
    in_city = max(1, _months_between(job.started_on, last))
    earlier = rnd.randrange(0, 60) if household.origin.code == CHENGDU else 0
    first_month = job.started_on - timedelta(days=31 * earlier)
    months = in_city + earlier
    fields: dict[str, Any] = {
        "insured_city_code": SHENZHEN,
        "as_of": last.isoformat(),
        "status": "active",
        "account_number": f"SZ{rnd.randrange(10**10):010d}",
        "insured_name": person.name,
        "schemes": {
            "pension": _scheme(months, in_city, first_month, last),
            "medical": _scheme(months, in_city, first_month, last),
            "unemployment": _scheme(in_city, in_city, job.started_on, last),
            "work_injury": _scheme(in_city, in_city, job.started_on, last),
        },
        "monthly_contribution_base": money(job.monthly_wage),
        "employer": {"name": job.employer, "unified_social_credit_code": job.employer_code},
        "arrears_months": rnd.choice((0, 0, 0, 0, 0, 1, 2)),
        "pension_personal_account_balance": money(months * job.monthly_wage * 0.08),
        "identity_number": person.identity_number,
    }
    if person.sex == "F":
        fields["schemes"]["maternity"] = _scheme(in_city, in_city, job.started_on, last)
    if earlier:
        fields["transfers"] = [
            {
                "from_city_code": CHENGDU,
                "to_city_code": SHENZHEN,
                "date": (job.started_on + timedelta(days=60)).isoformat(),
                "scheme": "pension",
            }
        ]
    return fields


def employment_contract(
    person: Person, household: Household, job: Job, rnd: random.Random, today: date
) -> dict[str, Any]:
    open_ended = job.started_on < today - timedelta(days=3 * 365)
    fields: dict[str, Any] = {
        "work_city_code": SHENZHEN,
        "contract_type": "open_ended" if open_ended else "fixed_term",
        "filed_on": (job.started_on + timedelta(days=rnd.randrange(1, 20))).isoformat(),
        "status": "active",
        "filing_number": f"SZHT-{job.started_on.year}-{rnd.randrange(10**6):06d}",
        "employer": {"name": job.employer, "unified_social_credit_code": job.employer_code},
        "employee_name": person.name,
        "job_title": job.title,
        "start_date": job.started_on.isoformat(),
        "working_hours_system": "standard",
        "monthly_wage": money(job.monthly_wage),
        "wage_payment_day": rnd.choice((5, 10, 15, 25)),
        "work_address": job.work_address,
        "employee_identity_number": person.identity_number,
    }
    if not open_ended:
        end = plus_years(job.started_on, 3) - timedelta(days=1)
        fields["end_date"] = end.isoformat()
    return fields


def housing_rental(
    person: Person, household: Household, rnd: random.Random, today: date
) -> dict[str, Any]:
    lease_start = today - timedelta(days=rnd.randrange(20, 600))
    lease_end = plus_years(lease_start, 2) - timedelta(days=1)
    area = rnd.randrange(18, 90)
    return {
        "property_city_code": SHENZHEN,
        "registered_on": (lease_start - timedelta(days=rnd.randrange(1, 10))).isoformat(),
        "status": "registered",
        "registration_number": f"SZZL-{lease_start.year}-{rnd.randrange(10**7):07d}",
        "property_district_code": household.district_code,
        "housing_type": rnd.choice(("private_rental", "private_rental", "employer_dormitory")),
        "lease_start": lease_start.isoformat(),
        "lease_end": lease_end.isoformat(),
        "tenant_name": person.name,
        "co_residents": len(household.members) - 1,
        "landlord_type": rnd.choice(("individual", "individual", "company")),
        "property_address": household.address,
        "floor_area_sqm": f"{area}.{rnd.choice((0, 5))}",
        "monthly_rent": money(area * rnd.uniform(55, 95)),
        "landlord_name": rnd.choice(SURNAMES) + rnd.choice("建国志华秀兰德明桂英"),
        "tenant_identity_number": person.identity_number,
    }


def _income_tax(taxable: float) -> float:
    brackets = ((36000, 0.03, 0), (144000, 0.10, 2520), (300000, 0.20, 16920))
    for ceiling, rate, deduction in brackets:
        if taxable <= ceiling:
            return taxable * rate - deduction
    return taxable * 0.25 - 31920


def tax_record(
    person: Person, household: Household, job: Job, rnd: random.Random, today: date
) -> dict[str, Any]:
    year = today.year - 1
    months = 12 if job.started_on.year < year else max(0, 12 - job.started_on.month + 1)
    deductions: dict[str, str] = {"housing_rent": money(1500 * 12)}
    if household.children:
        deductions["children_education"] = money(2000 * 12 * len(household.children))
    taxable = job.monthly_wage * months - 5000 * months - sum(float(v) for v in deductions.values())
    filed = min(date(year + 1, rnd.randrange(3, 7), rnd.randrange(1, 29)), today)
    return {
        "tax_year": year,
        "tax_authority_region_code": SHENZHEN,
        "filed_on": filed.isoformat(),
        "filing_status": "filed",
        "taxpayer_name": person.name,
        "months_with_tax_paid": months,
        "annual_taxable_income": money(taxable),
        "tax_paid": money(_income_tax(max(taxable, 0))),
        "withholding_agents": [
            {"name": job.employer, "unified_social_credit_code": job.employer_code}
        ],
        "taxpayer_identity_number": person.identity_number,
        "special_additional_deductions": deductions,
    }


def health_record(
    person: Person, household: Household, job: Job | None, rnd: random.Random, today: date
) -> dict[str, Any]:
    """Chengdu people stay insured at home (remote settlement in Shenzhen); others in Shenzhen."""
    from_chengdu = household.origin.code == CHENGDU
    created = (
        household.arrived_on
        if not from_chengdu
        else plus_years(person.birth_date, max(18, 2005 - person.birth_date.year))
    )
    fields: dict[str, Any] = {
        "insurance_region_code": CHENGDU if from_chengdu else SHENZHEN,
        "created_on": created.isoformat(),
        "status": "active",
        "record_number": (
            f"{'CD' if from_chengdu else 'SZ'}{created:%Y%m%d}{rnd.randrange(10**6):06d}"
        ),
        "person_name": person.name,
        "insurance_type": "urban_rural_resident_medical"
        if from_chengdu or job is None
        else "employee_basic_medical",
        "designated_hospital_codes": [f"H{household.district_code}{rnd.randrange(10**5):05d}"],
        "blood_type": rnd.choice(("A", "B", "AB", "O", "O")),
        "annual_outpatient_spend": money(rnd.uniform(0, 4000)),
        "emergency_contact_phone": phone(rnd),
        "identity_number": person.identity_number,
    }
    if from_chengdu:
        start = today - timedelta(days=rnd.randrange(30, 600))
        fields["remote_settlement"] = {
            "registered": True,
            "settlement_city_code": SHENZHEN,
            "valid_from": start.isoformat(),
            "valid_to": plus_years(start, 2).isoformat(),
            "category": "long_term_resident",
        }
    if rnd.random() < 0.2:
        fields["allergies"] = [rnd.choice(("青霉素", "花粉", "海鲜", "磺胺类药物"))]
    if rnd.random() < 0.25:
        since = today - timedelta(days=rnd.randrange(200, 3000))
        fields["chronic_conditions"] = [
            {"icd10": rnd.choice(_CONDITIONS), "since": since.isoformat()}
        ]
    return fields


def student_record(
    child: Person,
    household: Household,
    guardians: list[tuple[str, str]],
    rnd: random.Random,
    today: date,
) -> dict[str, Any]:
    """A pupil's 学籍; ``guardians`` are (relationship, pseudonym) of the parents."""
    age = child.age_on(today)
    primary = age < 12
    grade = min(max(age - 5, 1), 6) if primary else min(max(age - 11, 1), 3)
    school_year = today.year if today.month >= 9 else today.year - 1
    district = next(name for code, name, _ in DISTRICTS if code == household.district_code)
    kind = "小学" if primary else "中学"
    fields: dict[str, Any] = {
        "school_city_code": SHENZHEN,
        "status": "enrolled",
        "school_code": f"21{household.district_code}{rnd.randrange(100):02d}",
        "school_name": f"深圳市{district}第{'一二三四五六七八九'[rnd.randrange(9)]}{kind}",
        "stage": "primary" if primary else "junior_secondary",
        "grade": grade,
        "enrolled_on": date(school_year - grade + 1, 9, 1).isoformat(),
        "student_name": child.name,
        "date_of_birth": child.birth_date.isoformat(),
        "hukou_region_code": child.birth_county,
        "is_migrant_child": True,
        "guardians": [
            {"relationship": relationship, "subject_pseudonym": pseudonym}
            for relationship, pseudonym in guardians
        ],
        "student_registration_number": f"G{child.identity_number}",
    }
    if rnd.random() < 0.03:
        fields["special_education_needs"] = [rnd.choice(("learning", "speech"))]
    return fields
