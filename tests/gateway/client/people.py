"""Test people and their records: catalogue examples, each about a fresh person."""

from __future__ import annotations

import copy
import itertools
from datetime import date, timedelta
from typing import Any

from gateway.demo.population import identity_number
from policies.catalogue import Catalogue
from policies.vocabulary import TIERS

_IDENTITY_FIELDS = (
    "holder_identity_number",
    "identity_number",
    "employee_identity_number",
    "tenant_identity_number",
    "taxpayer_identity_number",
)
_serial = itertools.count(1)
CATALOGUE = Catalogue.load_default()


def new_person() -> str:
    """A valid GB 11643 number nobody else in the test session has."""
    n = next(_serial)
    return identity_number("510104", date(1980, 1, 1) + timedelta(days=37 * n), 101 + 2 * (n % 400))


def record(record_type: str, person: str, **overrides: Any) -> dict[str, Any]:
    """The catalogue's example of ``record_type``, about ``person``, registered in Shenzhen."""
    fields: dict[str, Any] = copy.deepcopy(CATALOGUE.schema(record_type, 1)["examples"][0])
    for name in _IDENTITY_FIELDS:
        if name in fields:
            fields[name] = person
    if record_type == "health_record":
        fields["insurance_region_code"] = "440300"
    fields.update(overrides)
    CATALOGUE.validate(record_type, 1, fields)
    return fields


def up_to(record_type: str, fields: dict[str, Any], tier: str) -> dict[str, Any]:
    """The fields of ``fields`` in tiers T0..``tier``: what a grant at ``tier`` reveals."""
    groups = CATALOGUE.split_by_tier(record_type, 1, fields)
    wanted = TIERS[: TIERS.index(tier) + 1]
    return {name: value for t in wanted for name, value in groups[t].items()}
