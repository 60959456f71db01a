"""Typed request dataclasses: validation and the plain-JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.errors import PolicyRequestError
from policies.requests import (
    AccessContext,
    AccessLogResource,
    AccessRequest,
    Action,
    Principal,
    RecordResource,
    resource_from_dict,
)
from policies.vocabulary import tier_rank, tiers_up_to


def _request() -> AccessRequest:
    return AccessRequest(
        Principal("hrss.insp.1", "HRSS", "labour_inspector", "440300", 2),
        Action.READ,
        RecordResource("rec-1", "HRSS", "employment_contract", "T2", "440300"),
        AccessContext("wage_arrears", case_ref="SZ-LJ-1", has_consent=False, emergency=False),
    )


def test_round_trip_through_json() -> None:
    request = _request()
    data = json.loads(json.dumps(request.to_dict()))
    assert AccessRequest.from_dict(data) == request
    log = AccessRequest(
        request.principal, Action.READ_EVENTS, AccessLogResource("*"), request.context
    )
    assert AccessRequest.from_dict(log.to_dict()) == log


def test_cedar_entities() -> None:
    request = _request()
    assert request.principal.entity()["attrs"] == {
        "org": "HRSS",
        "role": "labour_inspector",
        "region": "440300",
        "clearance": 2,
    }
    assert request.resource.entity()["attrs"]["tier"] == 2
    assert request.resource.uid() == {"type": "Record", "id": "rec-1#T2"}
    assert request.context.to_cedar()["case_ref"] == "SZ-LJ-1"


def test_principal_from_certificate_attributes() -> None:
    principal = Principal.from_attributes(
        "officer.education.sz1",
        "Education",
        {"role": "enrolment_officer", "region": "440300", "clearance": "1", "hf.Type": "client"},
    )
    assert principal.clearance == 1
    with pytest.raises(PolicyRequestError):
        Principal.from_attributes("x", "Education", {"role": "enrolment_officer"})


def test_blank_case_reference_means_none() -> None:
    assert AccessContext("wage_arrears", case_ref="  ").case_ref is None
    assert AccessContext("wage_arrears", case_ref=" A-1 ").case_ref == "A-1"
    assert AccessContext("wage_arrears").to_cedar()["case_ref"] == ""


@pytest.mark.parametrize(
    "change",
    [
        {"region": "44030"},
        {"region": "040300"},
        {"clearance": 4},
        {"clearance": -1},
        {"clearance": True},
        {"clearance": "two"},
        {"role": "Labour Inspector"},
        {"org": ""},
        {"officer_id": "x" * 300},
        {"extra": 1},
    ],
)
def test_bad_principal_rejected(change: dict[str, Any]) -> None:
    data = _request().principal.to_dict() | change
    with pytest.raises(PolicyRequestError):
        Principal.from_dict(data)


@pytest.mark.parametrize(
    "change",
    [{"tier": "T4"}, {"tier": 2}, {"record_type": "Tax Record"}, {"kind": "access_log"}],
)
def test_bad_record_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(PolicyRequestError):
        RecordResource.from_dict(_request().resource.to_dict() | change)


@pytest.mark.parametrize(
    "data",
    [
        {"purpose": ""},
        {"purpose": "x", "has_consent": "yes"},
        {"purpose": "x", "emergency": 1},
        {"purpose": "x", "case_ref": 5},
        {"purpose": "x", "case_ref": "c" * 129},
        {"purpose": "x", "why": "because"},
        {},
    ],
)
def test_bad_context_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(PolicyRequestError):
        AccessContext.from_dict(data)


def test_action_must_fit_resource() -> None:
    request = _request()
    with pytest.raises(PolicyRequestError, match="access-log"):
        AccessRequest(request.principal, Action.READ_EVENTS, request.resource, request.context)
    with pytest.raises(PolicyRequestError, match="record"):
        AccessRequest(request.principal, Action.READ, AccessLogResource("HRSS"), request.context)
    with pytest.raises(PolicyRequestError, match="unknown action"):
        AccessRequest.from_dict(request.to_dict() | {"action": "delete"})
    assert AccessRequest.from_dict(request.to_dict() | {"action": "emergency_read"}).action is (
        Action.EMERGENCY_READ
    )


def test_resource_kind_dispatch() -> None:
    assert resource_from_dict({"kind": "access_log", "department": "Tax"}) == AccessLogResource(
        "Tax"
    )
    with pytest.raises(PolicyRequestError):
        resource_from_dict({"kind": "file"})
    with pytest.raises(PolicyRequestError):
        AccessLogResource("not a department")


def test_tier_helpers() -> None:
    assert tier_rank("T2") == 2
    assert tiers_up_to("T1") == ("T0", "T1")
    assert tiers_up_to("T3") == ("T0", "T1", "T2", "T3")
    with pytest.raises(PolicyRequestError):
        tier_rank("T5")
