"""Cedar evaluation: every scenario's permit and near misses, batching, determinism."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.catalogue import Catalogue
from policies.engine import REVIEW_REQUIRED, Decision, PolicySet, load_default_sources
from policies.errors import PolicyRequestError, PolicySetError
from policies.requests import (
    AccessContext,
    AccessLogResource,
    AccessRequest,
    Action,
    Principal,
    RecordResource,
)
from policies.vocabulary import ORGS, PURPOSES, ROLES, TIERS
from tests.policies.scenarios import CASES, SHENZHEN, Case, ctx, officer, rec


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scenario(policy_set: PolicySet, case: Case) -> None:
    decision = policy_set.evaluate(case.request())
    assert decision.allowed is case.allowed
    assert decision.determining_policy_ids == case.policy_ids
    assert decision.obligations == case.obligations
    assert decision.errors == ()


def test_every_permit_policy_is_exercised_by_the_table(policy_set: PolicySet) -> None:
    used = {pid for case in CASES for pid in case.policy_ids}
    register = {pid for pid in policy_set.policy_ids if pid.startswith("register.")}
    assert set(policy_set.policy_ids) - used <= register  # registration: next test


@pytest.mark.parametrize("record_type", sorted(Catalogue.load_default().record_types()))
def test_registrars_register_exactly_their_departments_types(
    policy_set: PolicySet, catalogue: Catalogue, record_type: str
) -> None:
    owner = catalogue.owner_org(record_type, 1)
    for org in ORGS:
        registrar = officer(org, "registrar")
        resource = RecordResource("r1", org, record_type, "T0", SHENZHEN)
        decision = policy_set.evaluate(
            AccessRequest(registrar, Action.REGISTER, resource, ctx("service_delivery"))
        )
        assert decision.allowed is (org == owner), (org, record_type)


def test_default_deny_has_no_determining_policy(policy_set: PolicySet) -> None:
    decision = policy_set.evaluate(
        AccessRequest(
            officer("CivilAffairs", "clerk"), Action.READ, rec("tax_record", "T0"), ctx("audit")
        )
    )
    assert decision == Decision(False, (), (), ())
    assert decision.reason == "default_deny"


def test_reasons(policy_set: PolicySet) -> None:
    by_name = {case.name: case for case in CASES}
    allowed = policy_set.evaluate(by_name["glass: emergency physician T3"].request())
    assert allowed.reason == "permit:break_glass.emergency_care"
    capped = policy_set.evaluate(by_name["school: above clearance"].request())
    assert capped.reason == "forbid:guard.clearance_cap"


def test_tier_ordering_grants_lower_tiers(policy_set: PolicySet) -> None:
    # A grant at T2 implies T0..T2 are grantable, and nothing above.
    principal = officer("HRSS", "social_security_officer", clearance=3)
    resources = [rec("social_insurance", tier) for tier in TIERS]
    decisions = policy_set.evaluate_batch(
        principal, Action.READ, resources, ctx("social_insurance_transfer")
    )
    assert [d.allowed for d in decisions] == [True, True, True, False]


def _groups(cases: list[Case]) -> dict[tuple[Principal, Action], list[Case]]:
    groups: dict[tuple[Principal, Action], list[Case]] = defaultdict(list)
    for case in cases:
        groups[(case.principal, case.action)].append(case)
    return groups


def test_batch_equals_individual_evaluation(policy_set: PolicySet) -> None:
    batched = 0
    for (principal, action), cases in _groups(CASES).items():
        # Same resource at the same tier may appear with different contexts.
        decisions = policy_set.evaluate_batch(
            principal, action, [c.resource for c in cases], [c.context for c in cases]
        )
        assert decisions == [policy_set.evaluate(c.request()) for c in cases]
        batched += len(cases) > 1
    assert batched >= 5


def test_batch_with_shared_context_and_several_tiers(policy_set: PolicySet) -> None:
    resources = [
        rec(record_type, tier)
        for record_type, tier in itertools.product(
            ("residence_permit", "housing_rental", "health_record"), TIERS
        )
    ]
    principal = officer("Education", "enrolment_officer", clearance=3)
    context = ctx("school_enrolment")
    decisions = policy_set.evaluate_batch(principal, "read", resources, context)
    expected = [
        policy_set.evaluate(AccessRequest(principal, Action.READ, r, context)) for r in resources
    ]
    assert decisions == expected
    assert [d.allowed for d in decisions] == [True, True, False, False] * 2 + [False] * 4


def test_batch_input_errors(policy_set: PolicySet) -> None:
    principal = officer("Housing", "caseworker")
    assert policy_set.evaluate_batch(principal, Action.READ, [], ctx("service_delivery")) == []
    with pytest.raises(PolicyRequestError):
        policy_set.evaluate_batch(
            principal, Action.READ, [rec("housing_rental", "T1")], [ctx("a"), ctx("b")]
        )
    conflicting = [
        RecordResource("r1", "Housing", "housing_rental", "T1", SHENZHEN),
        RecordResource("r1", "Housing", "housing_rental", "T1", "440100"),
    ]
    with pytest.raises(PolicyRequestError, match="share the id"):
        policy_set.evaluate_batch(principal, Action.READ, conflicting, ctx("service_delivery"))
    with pytest.raises(PolicyRequestError):
        policy_set.evaluate_batch(
            principal, Action.READ, [AccessLogResource("Housing")], ctx("audit")
        )
    with pytest.raises(PolicyRequestError):
        policy_set.evaluate_batch(principal, "delete", [rec("housing_rental", "T1")], ctx("a"))


def test_decision_round_trip() -> None:
    decision = Decision(True, ("break_glass.emergency_care",), (REVIEW_REQUIRED,), ())
    assert Decision.from_dict(decision.to_dict()) == decision
    with pytest.raises(PolicyRequestError):
        Decision.from_dict({"allowed": "yes", "determining_policy_ids": []})


def test_default_set_is_deterministic_across_loads(policy_set: PolicySet) -> None:
    schema_text, policies = load_default_sources()
    fresh = PolicySet(schema_text, dict(reversed(list(policies.items()))))
    for case in CASES:
        assert fresh.evaluate(case.request()) == policy_set.evaluate(case.request())


def test_annotations(policy_set: PolicySet) -> None:
    assert policy_set.annotations("break_glass.threat_to_life")["obligation"] == REVIEW_REQUIRED
    assert "obligation" not in policy_set.annotations("owner.read_own_records")
    with pytest.raises(PolicySetError):
        policy_set.annotations("nope")


SCHEMA, POLICIES = load_default_sources()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit (principal, action, resource);", "@id"),
        (
            '@id("a") permit (principal, action, resource);\n'
            '@id("a") forbid (principal, action, resource);',
            "duplicate",
        ),
        ('@id("a") @obligation("review_required") forbid (principal, action, resource);', "permit"),
        (
            '@id("a") permit (principal, action == Action::"read", resource) '
            'when { resource.colour == "red" };',
            "validate",
        ),
        ('@id("a") permit (principal, action, resource) when {', "parse"),
        ('@id("a") permit (principal == ?principal, action, resource);', "template"),
        ('@id("Bad Id") permit (principal, action, resource);', "@id"),
    ],
)
def test_policy_conventions_enforced(text: str, message: str) -> None:
    with pytest.raises(PolicySetError, match=message):
        PolicySet(SCHEMA, {"extra.cedar": text})


def test_policy_file_names_checked() -> None:
    with pytest.raises(PolicySetError):
        PolicySet(SCHEMA, {"../evil.cedar": '@id("a") permit (principal, action, resource);'})
    with pytest.raises(PolicySetError):
        PolicySet(SCHEMA, {})


def test_evaluation_errors_are_reported_with_policy_ids() -> None:
    overflow = (
        '@id("test.overflow") permit (principal, action == Action::"read", resource) '
        "when { principal.clearance + 9223372036854775807 > 0 };"
    )
    engine = PolicySet(SCHEMA, {"overflow.cedar": overflow})
    decision = engine.evaluate(
        AccessRequest(officer("Tax", "caseworker"), Action.READ, rec("tax_record", "T0"), ctx("a"))
    )
    assert not decision.allowed
    assert decision.errors
    assert "test.overflow" in decision.errors[0]
    assert "policy0" not in decision.errors[0]


_regions = st.sampled_from(["440300", "440100", "510100"])
_principals = st.builds(
    Principal,
    officer_id=st.just("officer-1"),
    org=st.sampled_from([*ORGS, "Unknown"]),
    role=st.sampled_from([*ROLES, "janitor"]),
    region=_regions,
    clearance=st.integers(0, 3),
)
_records = st.builds(
    RecordResource,
    record_id=st.sampled_from(["r1", "r2", "r3"]),
    owner_org=st.sampled_from(ORGS),
    record_type=st.sampled_from([*Catalogue.load_default().record_types(), "unknown_type"]),
    tier=st.sampled_from(TIERS),
    region=_regions,
)
_contexts = st.builds(
    AccessContext,
    purpose=st.sampled_from([*PURPOSES, "curiosity"]),
    case_ref=st.sampled_from([None, "CASE-1"]),
    has_consent=st.booleans(),
    emergency=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    principal=_principals,
    action=st.sampled_from([Action.READ, Action.EMERGENCY_READ, Action.REGISTER]),
    resources=st.lists(_records, min_size=1, max_size=6, unique_by=lambda r: r.uid()["id"]),
    contexts=st.lists(_contexts, min_size=6, max_size=6),
)
def test_properties(
    policy_set: PolicySet,
    principal: Principal,
    action: Action,
    resources: list[RecordResource],
    contexts: list[AccessContext],
) -> None:
    contexts = contexts[: len(resources)]
    batch = policy_set.evaluate_batch(principal, action, resources, contexts)
    for resource, context, decision in zip(resources, contexts, batch, strict=True):
        single = policy_set.evaluate(AccessRequest(principal, action, resource, context))
        assert single == decision  # batch == individual, and deterministic
        assert decision.errors == ()
        if not decision.allowed:
            assert decision.obligations == ()
            continue
        assert decision.determining_policy_ids
        assert principal.role in ROLES
        assert principal.role != "auditor"
        assert principal.org != "Audit"
        if action is not Action.REGISTER:
            assert TIERS.index(resource.tier) <= principal.clearance
        assert (REVIEW_REQUIRED in decision.obligations) is (action is Action.EMERGENCY_READ)
