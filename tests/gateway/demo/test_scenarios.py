"""The demo's access plan covers every scenario and asks only about records people have."""

from __future__ import annotations

from datetime import date

from gateway.demo.population import PopulationGenerator, all_people
from gateway.demo.scenarios import HUKOU_TYPES, plan_accesses
from policies.vocabulary import PURPOSES

TODAY = date(2026, 3, 15)
EVERYTHING = {
    "residence_permit",
    "social_insurance",
    "employment_contract",
    "housing_rental",
    "tax_record",
    "health_record",
    "student_record",
}


def test_every_scenario_appears_in_a_hundred_person_plan() -> None:
    households = PopulationGenerator(3, TODAY).population(100)
    people = all_people(households)
    held = {p.identity_number: set(EVERYTHING) for p in people}
    citizens = {"citizen.c1": households[0].head, "citizen.c2": households[1].head}
    plan = plan_accesses(households, citizens, held, year=2026, hukou_applicants=list(citizens))
    labels = {p.label for p in plan}
    assert labels >= {
        "school_enrolment",
        "enrolment_overreach",
        "enrolment_with_tax",
        "wrong_region",
        "insurance_transfer",
        "medical_settlement",
        "restricted_without_consent",
        "break_glass",
        "wage_arrears",
        "wage_arrears_no_case",
        "criminal_investigation",
        "investigation_no_case",
        "owner_service",
        "points_hukou",
    }
    for planned in plan:
        assert planned.purpose in PURPOSES
        assert (planned.justification is not None) == (planned.label == "break_glass")
        if planned.label in ("wage_arrears", "criminal_investigation"):
            assert planned.case_ref is not None
            assert str(TODAY.year) in planned.case_ref
        if planned.label.endswith("no_case"):
            assert planned.case_ref is None
    hukou = [p for p in plan if p.label == "points_hukou"]
    assert [p.person for p in hukou] == [households[0].head, households[1].head]
    assert all(p.record_types == HUKOU_TYPES for p in hukou)


def test_nobody_is_asked_about_records_they_do_not_have() -> None:
    households = PopulationGenerator(3, TODAY).population(40)
    held = {p.identity_number: {"residence_permit"} for p in all_people(households)}
    plan = plan_accesses(households, {}, held, year=2026, hukou_applicants=[])
    assert plan
    assert all("residence_permit" in p.record_types for p in plan)
    assert plan_accesses(households, {}, {}, year=2026, hukou_applicants=[]) == []
