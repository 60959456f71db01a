"""The synthetic population: exact size, valid and unique identity numbers, believable families."""

from __future__ import annotations

from datetime import date

import pytest

from crypto.pseudonym import normalise_identity_number
from gateway.demo.population import (
    DISTRICTS,
    ORIGINS,
    PopulationGenerator,
    all_people,
    identity_number,
)

TODAY = date(2026, 3, 15)


def test_identity_number_has_the_gb11643_check_character() -> None:
    # The worked example of GB 11643-1999 (appendix): 11010519491231002X.
    assert identity_number("110105", date(1949, 12, 31), 2) == "11010519491231002X"


@pytest.mark.parametrize("people", [1, 2, 5, 37, 250])
def test_population_has_exactly_the_requested_size(people: int) -> None:
    households = PopulationGenerator(7, TODAY).population(people)
    assert len(all_people(households)) == people
    assert all(household.adults for household in households)


def test_people_are_valid_unique_and_plausible() -> None:
    households = PopulationGenerator(11, TODAY).population(400)
    people = all_people(households)
    numbers = [p.identity_number for p in people]
    assert len(set(numbers)) == len(numbers)
    origin_counties = {code for city, _ in ORIGINS for code, _ in city.counties}
    districts = {code for code, _, _ in DISTRICTS}
    for household in households:
        assert household.district_code in districts
        assert household.arrived_on < TODAY
        for person in household.members:
            assert normalise_identity_number(person.identity_number, today=TODAY) == (
                person.identity_number
            )
            assert person.identity_number[:6] == person.birth_county in origin_counties
            assert person.identity_number[6:14] == person.birth_date.strftime("%Y%m%d")
            assert int(person.identity_number[16]) % 2 == (1 if person.sex == "M" else 0)
            assert 2 <= len(person.name) <= 3
            age = person.age_on(TODAY)
            assert (6 <= age <= 15) if person.is_child else (24 <= age <= 50)
        for child in household.children:
            father = next((a for a in household.adults if a.sex == "M"), household.head)
            assert child.name[0] == father.name[0]
    assert sum(len(h.children) for h in households) > len(households) // 2
    assert any(h.origin.code == "510100" for h in households)
    assert {h.origin.province for h in households} == {"四川省", "河南省", "湖南省"}


def test_same_seed_same_people_other_seed_other_people() -> None:
    def numbers(seed: int) -> list[str]:
        return [
            p.identity_number for p in all_people(PopulationGenerator(seed, TODAY).population(30))
        ]

    assert numbers(3) == numbers(3)
    assert numbers(3) != numbers(4)
