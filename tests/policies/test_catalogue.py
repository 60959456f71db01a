"""The record-type catalogue: schemas, validation errors, tier splitting, hashing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from crypto.errors import AccessLedgerError
from policies.catalogue import Catalogue, split_by_tier, validate
from policies.errors import CatalogueError, CatalogueValidationError, UnknownRecordTypeError
from policies.vocabulary import ORGS, TIERS
from tests.policies.conftest import example

RECORD_TYPES = (
    "residence_permit",
    "social_insurance",
    "employment_contract",
    "housing_rental",
    "student_record",
    "health_record",
    "tax_record",
)


def _error(catalogue: Catalogue, record_type: str, payload: Any) -> CatalogueValidationError:
    with pytest.raises(CatalogueValidationError) as info:
        catalogue.validate(record_type, 1, payload)
    return info.value


def test_default_catalogue_has_every_record_type(catalogue: Catalogue) -> None:
    assert set(catalogue.record_types()) == set(RECORD_TYPES)
    for record_type in RECORD_TYPES:
        assert catalogue.versions(record_type) == (1,)
        assert catalogue.latest_version(record_type) == 1
        assert catalogue.owner_org(record_type, 1) in ORGS


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_schema_is_draft_2020_12_and_closed(catalogue: Catalogue, record_type: str) -> None:
    schema = catalogue.schema(record_type, 1)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert all(prop["x-tier"] in TIERS for prop in schema["properties"].values())
    # Every type has fields in at least three tiers, so tiering means something.
    assert len(set(catalogue.field_tiers(record_type, 1).values())) >= 3


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_example_payload_is_valid(catalogue: Catalogue, record_type: str) -> None:
    payload = example(catalogue, record_type)
    catalogue.validate(record_type, 1, payload)
    validate(record_type, 1, payload)  # module-level helper, default catalogue


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_missing_required_field_is_named(catalogue: Catalogue, record_type: str) -> None:
    required = catalogue.schema(record_type, 1)["required"]
    assert required
    for name in required:
        payload = example(catalogue, record_type)
        del payload[name]
        error = _error(catalogue, record_type, payload)
        assert (error.pointer, error.rule) == (f"/{name}", "required")
        assert f"/{name} is required" in str(error)


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_unknown_field_is_rejected_and_named(catalogue: Catalogue, record_type: str) -> None:
    payload = example(catalogue, record_type)
    payload["nickname"] = "x"
    error = _error(catalogue, record_type, payload)
    assert (error.pointer, error.rule) == ("/nickname", "additionalProperties")
    assert "/nickname" in str(error)


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_wrong_type_is_named(catalogue: Catalogue, record_type: str) -> None:
    region_field = catalogue.record_schema(record_type, 1).region_field
    payload = example(catalogue, record_type)
    payload[region_field] = 440300
    error = _error(catalogue, record_type, payload)
    assert (error.pointer, error.rule) == (f"/{region_field}", "type")
    assert "must be of type string" in str(error)


# (record type, change to the example, expected pointer, expected rule)
RULE_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("residence_permit", {"status": "lost"}, "/status", "enum"),
    ("residence_permit", {"valid_from": "2024-02-30"}, "/valid_from", "format"),
    ("residence_permit", {"valid_to": "2020-01-01"}, "/valid_to", "x-date-order"),
    ("residence_permit", {"issuing_city_code": "44030"}, "/issuing_city_code", "pattern"),
    ("residence_permit", {"contact_phone": "12345"}, "/contact_phone", "pattern"),
    ("residence_permit", {"holder_name": ""}, "/holder_name", "minLength"),
    (
        "residence_permit",
        {"annual_endorsements": ["2025-02-20", "2025-02-20"]},
        "/annual_endorsements",
        "uniqueItems",
    ),
    ("social_insurance", {"schemes": {}}, "/schemes", "minProperties"),
    (
        "social_insurance",
        {"schemes": {"housing_fund": {"months_contributed": 1, "status": "contributing"}}},
        "/schemes/housing_fund",
        "additionalProperties",
    ),
    (
        "social_insurance",
        {"schemes": {"pension": {"months_contributed": -1, "status": "contributing"}}},
        "/schemes/pension/months_contributed",
        "minimum",
    ),
    (
        "social_insurance",
        {"monthly_contribution_base": "8500"},
        "/monthly_contribution_base",
        "pattern",
    ),
    (
        "social_insurance",
        {"employer": {"name": "x", "unified_social_credit_code": "9144030"}},
        "/employer/unified_social_credit_code",
        "pattern",
    ),
    (
        "social_insurance",
        {"employer": {"name": "x"}},
        "/employer/unified_social_credit_code",
        "required",
    ),
    ("employment_contract", {"end_date": "2022-12-31"}, "/end_date", "x-date-order"),
    ("employment_contract", {"wage_payment_day": 32}, "/wage_payment_day", "maximum"),
    ("housing_rental", {"lease_end": "2024-02-01"}, "/lease_end", "x-date-order"),
    ("housing_rental", {"co_residents": 1.5}, "/co_residents", "type"),
    (
        "student_record",
        {"guardians": [{"relationship": "father", "subject_pseudonym": "ps1:short"}]},
        "/guardians/0/subject_pseudonym",
        "pattern",
    ),
    ("student_record", {"guardians": []}, "/guardians", "minItems"),
    ("student_record", {"is_migrant_child": "yes"}, "/is_migrant_child", "type"),
    (
        "health_record",
        {"chronic_conditions": [{"icd10": "diabetes"}]},
        "/chronic_conditions/0/icd10",
        "pattern",
    ),
    (
        "health_record",
        {
            "remote_settlement": {
                "registered": True,
                "settlement_city_code": "440300",
                "valid_from": "2025-01-01",
                "valid_to": "2024-01-01",
            }
        },
        "/remote_settlement/valid_to",
        "x-date-order",
    ),
    ("tax_record", {"tax_year": 1999}, "/tax_year", "minimum"),
    ("tax_record", {"months_with_tax_paid": 13}, "/months_with_tax_paid", "maximum"),
]


@pytest.mark.parametrize(("record_type", "change", "pointer", "rule"), RULE_CASES)
def test_rule_violations_name_field_and_rule(
    catalogue: Catalogue, record_type: str, change: dict[str, Any], pointer: str, rule: str
) -> None:
    payload = example(catalogue, record_type)
    payload.update(change)
    error = _error(catalogue, record_type, payload)
    assert (error.pointer, error.rule) == (pointer, rule)
    assert pointer in str(error)
    assert f"(rule: {rule})" in str(error)


def test_identity_number_check_character_is_verified(catalogue: Catalogue) -> None:
    payload = example(catalogue, "tax_record")
    number = payload["taxpayer_identity_number"]
    wrong = "1" if number[17] != "1" else "2"
    payload["taxpayer_identity_number"] = number[:17] + wrong
    error = _error(catalogue, "tax_record", payload)
    assert (error.pointer, error.rule) == ("/taxpayer_identity_number", "format")
    # I1: the message names the field and rule but never echoes personal data.
    assert number[:17] not in str(error)


def test_error_messages_do_not_echo_values(catalogue: Catalogue) -> None:
    payload = example(catalogue, "residence_permit")
    payload["holder_name"] = ["张三"]
    payload["residence_address"] = 12345678
    error = _error(catalogue, "residence_permit", payload)
    assert "张三" not in str(error)
    assert "12345678" not in str(error)
    assert "(and 1 more)" in str(error)


def test_error_is_an_accessledger_error_with_stable_code(catalogue: Catalogue) -> None:
    error = _error(catalogue, "housing_rental", ["not", "an", "object"])
    assert isinstance(error, AccessLedgerError)
    assert error.code == "payload_invalid"
    assert (error.pointer, error.rule) == ("", "type")


def test_unknown_record_type_or_version(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownRecordTypeError):
        catalogue.validate("marriage_record", 1, {})
    with pytest.raises(UnknownRecordTypeError):
        catalogue.schema("residence_permit", 2)
    with pytest.raises(UnknownRecordTypeError):
        catalogue.versions("marriage_record")


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_split_by_tier_groups_fields_by_their_tier(catalogue: Catalogue, record_type: str) -> None:
    payload = example(catalogue, record_type)
    tiers = catalogue.field_tiers(record_type, 1)
    groups = catalogue.split_by_tier(record_type, 1, payload)
    assert list(groups) == list(TIERS)
    for tier, fields in groups.items():
        assert all(tiers[name] == tier for name in fields)
    merged = {k: v for fields in groups.values() for k, v in fields.items()}
    assert merged == payload
    assert catalogue.merge_tiers(record_type, 1, groups) == payload
    assert split_by_tier(record_type, 1, payload) == groups


def test_split_by_tier_places_known_fields(catalogue: Catalogue) -> None:
    groups = catalogue.split_by_tier("health_record", 1, example(catalogue, "health_record"))
    assert groups["T0"]["insurance_region_code"] == "513700"
    assert "chronic_conditions" in groups["T3"]
    assert "identity_number" in groups["T3"]
    assert "blood_type" in groups["T2"]
    assert "person_name" in groups["T1"]
    si = catalogue.split_by_tier("social_insurance", 1, example(catalogue, "social_insurance"))
    assert si["T1"]["schemes"]["pension"]["months_contributed"] == 86
    assert "monthly_contribution_base" in si["T2"]
    assert "employer" in si["T2"]


def test_split_by_tier_returns_empty_groups_and_copies(catalogue: Catalogue) -> None:
    payload = example(catalogue, "health_record")
    for name, tier in catalogue.field_tiers("health_record", 1).items():
        if tier == "T3" and name not in catalogue.schema("health_record", 1)["required"]:
            payload.pop(name, None)
    groups = catalogue.split_by_tier("health_record", 1, payload)
    assert set(groups["T3"]) == {"identity_number"}
    groups["T1"]["remote_settlement"]["registered"] = False
    assert payload["remote_settlement"]["registered"] is True


def test_split_by_tier_validates_first(catalogue: Catalogue) -> None:
    payload = example(catalogue, "tax_record")
    payload["secret"] = 1
    with pytest.raises(CatalogueValidationError):
        catalogue.split_by_tier("tax_record", 1, payload)


def test_merge_tiers_accepts_partial_grants_and_rejects_moved_fields(catalogue: Catalogue) -> None:
    groups = catalogue.split_by_tier("tax_record", 1, example(catalogue, "tax_record"))
    granted = {tier: groups[tier] for tier in ("T0", "T1")}
    assert set(catalogue.merge_tiers("tax_record", 1, granted)) == set(groups["T0"]) | set(
        groups["T1"]
    )
    moved = {"T1": {"taxpayer_identity_number": groups["T3"]["taxpayer_identity_number"]}}
    with pytest.raises(CatalogueValidationError) as info:
        catalogue.merge_tiers("tax_record", 1, moved)
    assert info.value.pointer == "/taxpayer_identity_number"


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_t0_holds_no_personal_names_or_identity_numbers(
    catalogue: Catalogue, record_type: str
) -> None:
    schema = catalogue.schema(record_type, 1)
    for name, prop in schema["properties"].items():
        if prop["x-tier"] != "T0":
            continue
        assert not prop.get("x-identifying")
        assert not any(word in name for word in ("name", "identity", "phone", "address", "number"))
        assert prop.get("format") != "gb11643"
    for name, prop in schema["properties"].items():
        if prop.get("format") == "gb11643":
            assert prop["x-tier"] == "T3", name


def test_region_of_reads_the_region_field(catalogue: Catalogue) -> None:
    payload = example(catalogue, "student_record")
    assert catalogue.region_of("student_record", 1, payload) == "440300"


def _doc(catalogue: Catalogue) -> dict[str, Any]:
    return catalogue.schema("housing_rental", 1)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["properties"]["status"].pop("x-tier"), "x-tier"),
        (lambda d: d["properties"]["status"].update({"x-tier": "T9"}), "x-tier"),
        (lambda d: d["properties"]["tenant_name"].update({"x-tier": "T0"}), "not in T0"),
        (lambda d: d.update({"additionalProperties": True}), "additionalProperties"),
        (lambda d: d.update({"$schema": "http://json-schema.org/draft-07/schema#"}), "$schema"),
        (lambda d: d.update({"x-region-field": "lease_start"}), "x-region-field"),
        (lambda d: d["properties"]["status"].update({"type": "strnig"}), "not a valid JSON Schema"),
        (lambda d: d["required"].append("ghost"), "undefined"),
        (lambda d: d["examples"][0].update({"monthly_rent": "cheap"}), "example 0"),
        (
            lambda d: d["properties"]["status"].update({"items": {"x-tier": "T1"}}),
            "top-level",
        ),
    ],
)
def test_malformed_schemas_are_rejected(catalogue: Catalogue, mutate: Any, message: str) -> None:
    document = _doc(catalogue)
    mutate(document)
    with pytest.raises(CatalogueError) as info:
        Catalogue.from_documents([document])
    assert message in str(info.value)


def test_catalogue_round_trip_and_hash(catalogue: Catalogue) -> None:
    data = catalogue.to_dict()
    again = Catalogue.from_dict(json.loads(json.dumps(data)))
    assert again.catalogue_hash == catalogue.catalogue_hash
    assert again.canonical_bytes() == catalogue.canonical_bytes()
    assert again == catalogue
    assert len(catalogue.catalogue_hash) == 64
    reordered = {
        "record_types": {
            t: {v: dict(reversed(list(doc.items()))) for v, doc in versions.items()}
            for t, versions in reversed(list(data["record_types"].items()))
        },
        "format": data["format"],
    }
    assert Catalogue.from_dict(reordered).catalogue_hash == catalogue.catalogue_hash


def test_catalogue_hash_changes_with_any_schema_change(catalogue: Catalogue) -> None:
    data = catalogue.to_dict()
    changed = copy.deepcopy(data)
    changed["record_types"]["tax_record"]["1"]["properties"]["tax_paid"]["description"] += "."
    assert Catalogue.from_dict(changed).catalogue_hash != catalogue.catalogue_hash


def test_catalogue_with_two_versions(catalogue: Catalogue) -> None:
    v1 = catalogue.schema("residence_permit", 1)
    v2 = copy.deepcopy(v1)
    v2["x-version"] = 2
    v2["$id"] = "urn:accessledger:catalogue:residence_permit:v2"
    v2["properties"]["police_station_name"] = {"type": "string", "x-tier": "T0"}
    both = Catalogue.from_documents([v2, v1])
    assert both.versions("residence_permit") == (1, 2)
    payload = v1["examples"][0] | {"police_station_name": "南山派出所"}
    both.validate("residence_permit", 2, payload)
    with pytest.raises(CatalogueValidationError):
        both.validate("residence_permit", 1, payload)
    with pytest.raises(CatalogueError):
        Catalogue.from_documents([v1, v1])


def test_from_dict_rejects_misfiled_schema(catalogue: Catalogue) -> None:
    data = catalogue.to_dict()
    data["record_types"]["tax_record"]["2"] = data["record_types"]["tax_record"].pop("1")
    with pytest.raises(CatalogueError):
        Catalogue.from_dict(data)
    with pytest.raises(CatalogueError):
        Catalogue.from_dict({"record_types": {}})
