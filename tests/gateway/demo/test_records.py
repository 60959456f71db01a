"""Every record the demo builds validates against the catalogue, for many seeds and dates."""

from __future__ import annotations

import random
from datetime import date

import pytest

from gateway.demo import records as build
from gateway.demo.population import PopulationGenerator
from policies.catalogue import Catalogue

CATALOGUE = Catalogue.load_default()
GUARDIAN = "ps1:" + "b" * 52


@pytest.mark.parametrize("today", [date(2026, 3, 15), date(2024, 2, 29), date(2025, 9, 1)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_all_demo_records_validate(seed: int, today: date) -> None:
    rnd = random.Random(seed)
    counts: dict[str, int] = {}

    def check(record_type: str, fields: dict[str, object]) -> None:
        CATALOGUE.validate(record_type, 1, fields)
        counts[record_type] = counts.get(record_type, 0) + 1

    for household in PopulationGenerator(seed, today).population(120):
        for person in household.adults:
            job = build.job_for(person, household, rnd, today)
            check("residence_permit", build.residence_permit(person, household, job, rnd, today))
            check("health_record", build.health_record(person, household, job, rnd, today))
            if job is not None:
                check(
                    "social_insurance", build.social_insurance(person, household, job, rnd, today)
                )
                check(
                    "employment_contract",
                    build.employment_contract(person, household, job, rnd, today),
                )
                check("tax_record", build.tax_record(person, household, job, rnd, today))
        check("housing_rental", build.housing_rental(household.head, household, rnd, today))
        for child in household.children:
            fields = build.student_record(child, household, [("father", GUARDIAN)], rnd, today)
            check("student_record", fields)
    assert set(counts) == set(CATALOGUE.record_types())


def test_records_of_a_person_agree_with_each_other() -> None:
    today = date(2026, 3, 15)
    rnd = random.Random(5)
    household = PopulationGenerator(5, today).population(3)[0]
    person = household.head
    job = None
    while job is None:
        job = build.job_for(person, household, rnd, today)
    permit = build.residence_permit(person, household, job, rnd, today)
    contract = build.employment_contract(person, household, job, rnd, today)
    insurance = build.social_insurance(person, household, job, rnd, today)
    tax = build.tax_record(person, household, job, rnd, today)
    rental = build.housing_rental(person, household, rnd, today)
    assert (
        permit["holder_identity_number"]
        == contract["employee_identity_number"]
        == (person.identity_number)
    )
    assert permit["hukou_region_code"] == person.birth_county
    assert permit["residence_address"] == rental["property_address"] == household.address
    assert contract["employer"] == insurance["employer"]
    assert tax["withholding_agents"] == [contract["employer"]]
    assert contract["monthly_wage"] == insurance["monthly_contribution_base"]
    assert rental["co_residents"] == len(household.members) - 1


def test_unified_social_credit_code_check_character() -> None:
    code = build.uscc("440300", random.Random(1))
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [pow(3, i, 31) for i in range(17)]
    total = sum(chars.index(c) * w for c, w in zip(code[:17], weights, strict=True))
    assert chars.index(code[17]) == (31 - total % 31) % 31
    assert code.startswith("91440300")
