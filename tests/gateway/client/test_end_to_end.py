"""The SDK against the real gateway over HTTP on 127.0.0.1: every user job of DESIGN.md section 2.

Officers register and look up records, citizens see every access and consent
or contest, auditors stream the ledger and review break-glass accesses. All
requests are signed by the acting identity, all transactions by their
creator; payloads are decrypted here, in the client.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crypto.consortium import Consortium
from gateway.client import (
    AsyncClient,
    Client,
    ClientError,
    GatewayUnreachable,
    InvalidRequest,
    NotFound,
    Operations,
    PermissionDenied,
    operations_from,
)
from gateway.client.flows import Flow
from gateway.client.http import Call
from gateway.service.notes import JUSTIFICATION
from network.fabric.blocks import verify_chain
from policies.catalogue import Catalogue
from tests.gateway.client.people import CATALOGUE, new_person, record, up_to
from tests.gateway.test_app_support import read_note

Clients = Callable[[str], Client]


@pytest.fixture(scope="module")
def client(home: Path, gateway_url: str) -> Iterator[Clients]:
    """``client(name)``: the SDK client of identity ``name``, talking to the live gateway."""
    opened: dict[str, Client] = {}

    def make(name: str) -> Client:
        if name not in opened:
            opened[name] = Client.from_home(home, name, gateway_url=gateway_url)
        return opened[name]

    yield make
    for each in opened.values():
        each.close()


def bind_citizen(client: Clients, consortium: Consortium, citizen: str, subject: str) -> None:
    certificate = consortium.identity(citizen).cert_pem().decode("ascii")
    client("registrar.civilaffairs.sz1").register_citizen(certificate, subject)


def test_officer_in_region_gets_t1_fields_decrypted_equal_to_the_original(client: Clients) -> None:
    person = new_person()
    permit = record("residence_permit", person)
    receipt = client("registrar.publicsecurity.sz1").put_record("residence_permit", person, permit)
    assert receipt.version == 1
    assert receipt.owner_org == "PublicSecurity"
    assert receipt.region == "440300"
    assert receipt.subject.startswith("ps1:")
    assert set(receipt.tiers) == {"T0", "T1", "T2", "T3"}

    officer = client("officer.education.sz1")
    result = officer.request_access(receipt.subject, ["residence_permit"], "T1", "school_enrolment")

    assert result.decision == "granted"
    [granted] = result.granted
    assert granted.record_id == receipt.record_id
    assert granted.tiers == ("T0", "T1")
    assert granted.fields == up_to("residence_permit", permit, "T1")
    assert "residence_address" not in granted.fields  # T2
    assert "holder_identity_number" not in granted.fields  # T3
    assert result.policy_version >= 1
    assert result.decided_at < result.expires_at


def test_ciphertexts_fetched_as_blobs_decrypt_to_the_same_fields(client: Clients) -> None:
    person = new_person()
    rental = record("housing_rental", person)
    receipt = client("registrar.housing.sz1").put_record("housing_rental", person, rental)
    officer = client("officer.education.sz1")
    fetched = officer.request_access(
        receipt.subject, ["housing_rental"], "T1", "school_enrolment", inline_ciphertexts=False
    )
    assert fetched.granted[0].fields == up_to("housing_rental", rental, "T1")
    again = officer.fetch_access(fetched.tx_id)
    assert again.granted[0].fields == fetched.granted[0].fields


def test_identity_number_is_pseudonymised_the_same_way_locally_and_by_the_gateway(
    client: Clients,
) -> None:
    person = new_person()
    receipt = client("registrar.publicsecurity.sz1").put_record(
        "residence_permit", person, record("residence_permit", person)
    )
    officer = client("officer.education.sz1")
    assert officer.pseudonym_of(person) == receipt.subject
    result = officer.request_access(person, ["residence_permit"], "T1", "school_enrolment")
    assert [r.record_id for r in result.granted] == [receipt.record_id]


def test_denied_request_is_committed_with_reasons(client: Clients) -> None:
    person = new_person()
    receipt = client("registrar.publicsecurity.sz1").put_record(
        "residence_permit", person, record("residence_permit", person)
    )
    officer = client("officer.education.sz1")
    # The enrolment officer's clearance is 1: T2 is forbidden by the clearance guardrail.
    result = officer.request_access(receipt.subject, ["residence_permit"], "T2", "school_enrolment")
    assert result.decision == "denied"
    assert result.granted == []
    [denied] = result.denied
    assert denied.record_id == receipt.record_id
    assert denied.reason == "forbid:guard.clearance_cap"
    assert denied.policy_ids == ("guard.clearance_cap",)
    assert denied.fields == {}
    assert result.block_number > receipt.block_number

    # A purpose no policy grants this officer: denied by default.
    other = officer.request_access(receipt.subject, ["residence_permit"], "T1", "points_hukou")
    assert other.decision == "denied"
    assert other.denied[0].reason == "default_deny"


def test_partial_decision_grants_some_records_and_denies_others(client: Clients) -> None:
    person = new_person()
    permit = client("registrar.publicsecurity.sz1").put_record(
        "residence_permit", person, record("residence_permit", person)
    )
    tax = client("registrar.tax.sz1").put_record("tax_record", person, record("tax_record", person))
    result = client("officer.education.sz1").request_access(
        person, ["residence_permit", "tax_record"], "T1", "school_enrolment"
    )
    assert result.decision == "partial"
    assert [r.record_id for r in result.granted] == [permit.record_id]
    assert [r.record_id for r in result.denied] == [tax.record_id]


def test_citizen_sees_every_access_granted_and_denied(
    client: Clients, home_consortium: Consortium
) -> None:
    person = new_person()
    receipt = client("registrar.publicsecurity.sz1").put_record(
        "residence_permit", person, record("residence_permit", person)
    )
    bind_citizen(client, home_consortium, "citizen.c1", receipt.subject)
    officer = client("officer.education.sz1")
    granted = officer.request_access(person, ["residence_permit"], "T1", "school_enrolment")
    denied = officer.request_access(person, ["residence_permit"], "T2", "school_enrolment")

    citizen = client("citizen.c1")
    assert citizen.my_subject() == receipt.subject
    accesses = {a["event_id"]: a for a in citizen.all_my_accesses()}
    assert set(accesses) == {granted.event_id, denied.event_id}
    seen = accesses[granted.event_id]
    assert seen["decision"] == "granted"
    assert seen["officer"]["name"] == "officer.education.sz1"
    assert seen["officer"]["org"] == "Education"
    assert seen["purpose"] == "school_enrolment"
    assert seen["records"][0]["record_id"] == receipt.record_id
    assert seen["records"][0]["tiers"] == ["T0", "T1"]
    assert accesses[denied.event_id]["decision"] == "denied"
    assert accesses[denied.event_id]["records"][0]["reason"] == "forbid:guard.clearance_cap"
    # Nothing in the citizen's view is the plaintext payload.
    assert "holder_name" not in str(accesses)

    by_education = citizen.my_accesses(department="Education")
    assert len(by_education.accesses) == 2
    assert citizen.my_accesses(department="Health").accesses == []


def test_consent_enables_points_hukou_and_revocation_ends_it(
    client: Clients, home_consortium: Consortium
) -> None:
    person = new_person()
    tax_fields = record("tax_record", person)
    tax = client("registrar.tax.sz1").put_record("tax_record", person, tax_fields)
    bind_citizen(client, home_consortium, "citizen.c2", tax.subject)
    hukou = client("officer.publicsecurity.sz1")

    before = hukou.request_access(person, ["tax_record"], "T2", "points_hukou")
    assert before.decision == "denied"

    citizen = client("citizen.c2")
    consent = citizen.grant_consent("PublicSecurity", "points_hukou", ["tax_record"], max_tier="T2")
    consent_id = consent.result["consent_id"]
    assert consent_id == consent.tx_id
    [listed] = citizen.my_consents()["consents"]
    assert listed["status"] == "active"

    during = hukou.request_access(person, ["tax_record"], "T2", "points_hukou")
    assert during.decision == "granted"
    assert during.granted[0].fields == up_to("tax_record", tax_fields, "T2")
    assert "taxpayer_identity_number" not in during.granted[0].fields  # T3, never under consent

    citizen.revoke_consent(consent_id)
    assert citizen.my_consents()["consents"][0]["status"] == "revoked"
    after = hukou.request_access(person, ["tax_record"], "T2", "points_hukou")
    assert after.decision == "denied"


def test_break_glass_is_granted_flagged_and_reviewed_by_an_auditor(
    client: Clients, home: Path
) -> None:
    person = new_person()
    health = record("health_record", person)
    receipt = client("registrar.health.sz1").put_record("health_record", person, health)
    physician = client("officer.health.sz2")
    result = physician.request_access(
        person,
        ["health_record"],
        "T3",
        "emergency_care",
        emergency=True,
        justification="unconscious patient brought to the emergency room",
    )
    assert result.decision == "granted"
    assert result.emergency
    assert "review_required" in result.obligations
    assert result.granted[0].fields == health  # T3 releases every tier
    assert result.granted[0].record_id == receipt.record_id
    assert result.granted[0].schema_version == receipt.schema_version == 1
    # The SDK sent the justification text: the Audit custodian opens it from the Audit store.
    _, text = read_note(home, JUSTIFICATION, result.tx_id)
    assert text == "unconscious patient brought to the emergency room"

    auditor = client("auditor.audit.sz1")
    open_ids = {e["event_id"] for e in auditor.audit_events(open_review=True)["events"]}
    assert result.event_id in open_ids
    auditor.review(result.event_id, "justified", "emergency confirmed by the duty log")
    still_open = {e["event_id"] for e in auditor.audit_events(open_review=True)["events"]}
    assert result.event_id not in still_open


def test_contest_reopens_review_and_is_visible_to_citizen_and_auditor(
    client: Clients, home_consortium: Consortium
) -> None:
    person = new_person()
    contract = client("registrar.hrss.sz1").put_record(
        "employment_contract", person, record("employment_contract", person)
    )
    bind_citizen(client, home_consortium, "citizen.c3", contract.subject)
    inspector = client("officer.hrss.sz2")
    access = inspector.request_access(
        person, ["employment_contract"], "T2", "wage_arrears", case_ref="WA-2026-00042"
    )
    assert access.decision == "granted"

    citizen = client("citizen.c3")
    contested = citizen.contest(access.event_id, "I never filed a wage complaint.")
    assert contested.result["event_id"] == access.event_id
    [seen] = [a for a in citizen.all_my_accesses() if a["event_id"] == access.event_id]
    assert seen["review"]["status"] == "open"
    assert seen["review"]["contests"] == 1
    assert "contested" in seen["review"]["reasons"]

    auditor = client("auditor.audit.sz1")
    events = auditor.audit_events(subject=contract.subject)["events"]
    assert [e["event_id"] for e in events] == [access.event_id]
    assert access.event_id in {
        e["event_id"] for e in auditor.audit_events(open_review=True)["events"]
    }

    # Another citizen's event is not this citizen's to contest (and is not revealed).
    with pytest.raises(NotFound):
        client("citizen.c1").contest(access.event_id, "not mine")


def test_amended_record_is_read_at_its_new_version(client: Clients) -> None:
    person = new_person()
    registrar = client("registrar.publicsecurity.sz1")
    first = registrar.put_record("residence_permit", person, record("residence_permit", person))
    amended_fields = record("residence_permit", person, residence_district_code="440306")
    second = registrar.amend_record(first.record_id, "residence_permit", person, amended_fields)
    assert (second.record_id, second.version) == (first.record_id, 2)
    result = client("officer.education.sz1").request_access(
        person, None, "T1", "school_enrolment", record_ids=[first.record_id]
    )
    assert result.granted[0].version == 2
    assert result.granted[0].fields["residence_district_code"] == "440306"


def test_auditor_streams_the_whole_ledger_and_it_verifies(client: Clients) -> None:
    auditor = client("auditor.audit.sz1")
    blocks = auditor.blocks()
    assert [int(b.header.number) for b in blocks] == list(range(len(blocks)))
    assert verify_chain(blocks) == len(blocks)  # hash chain and data hashes hold
    assert auditor.ledger_info().height >= len(blocks)
    tail = auditor.blocks(len(blocks) - 1)
    assert int(tail[0].header.number) == len(blocks) - 1
    assert tail[0].SerializeToString() == blocks[-1].SerializeToString()
    # Only auditors may stream the raw ledger.
    with pytest.raises(PermissionDenied):
        client("officer.education.sz1").blocks()


def test_auditors_are_denied_payloads_and_the_denial_is_logged(client: Clients) -> None:
    person = new_person()
    client("registrar.publicsecurity.sz1").put_record(
        "residence_permit", person, record("residence_permit", person)
    )
    result = client("auditor.audit.sz1").request_access(
        client("auditor.audit.sz1").pseudonym_of(person), ["residence_permit"], "T0", "audit"
    )
    assert result.decision == "denied"
    reason = result.denied[0].reason
    assert reason is not None
    assert reason.startswith("forbid:")


def test_refusals_are_typed_errors_with_the_gateway_code(client: Clients, home: Path) -> None:
    person = new_person()
    registrar = client("registrar.publicsecurity.sz1")

    with pytest.raises(InvalidRequest) as invalid:
        registrar.put_record("residence_permit", person, {"status": "valid"})
    assert invalid.value.code == "record_invalid"
    assert invalid.value.status == 422
    assert invalid.value.problem["pointer"]

    with pytest.raises(InvalidRequest) as unknown:
        registrar.put_record("pet_licence", person, {"name": "x"})
    assert unknown.value.code == "unknown_record_type"

    typo = person[:-1] + ("1" if person[-1] != "1" else "2")  # a wrong check character
    with pytest.raises(InvalidRequest) as bad_number:
        registrar.put_record("residence_permit", typo, record("residence_permit", person))
    assert bad_number.value.code == "identity_number_invalid"
    assert bad_number.value.status is None  # refused locally, before anything was sent
    assert person[:-1] not in bad_number.value.message

    with pytest.raises(PermissionDenied) as not_registrar:
        client("officer.education.sz1").put_record(
            "residence_permit", person, record("residence_permit", person)
        )
    assert not_registrar.value.status == 403

    with pytest.raises(PermissionDenied) as not_a_citizen:
        client("officer.tax.sz1").my_consents()
    assert not_a_citizen.value.code == "citizen_not_registered"

    with pytest.raises(NotFound) as someone_elses:
        client("officer.health.sz1").fetch_access("0" * 64)
    assert someone_elses.value.code == "access_event_not_found"

    with pytest.raises(GatewayUnreachable):
        Client.from_home(home, "officer.education.sz1", gateway_url="http://127.0.0.1:1").health()

    with pytest.raises(ClientError) as no_secret:
        Client(operations_from_without_secret(home), base_url="http://127.0.0.1:1").request_access(
            person, ["residence_permit"]
        )
    assert no_secret.value.code == "pseudonym_unavailable"


def operations_from_without_secret(home: Path) -> Operations:
    """An officer's operations without the consortium secret (as outside the consortium)."""
    return Operations(Consortium.load(home).identity("officer.education.sz1"))


async def test_async_client_runs_the_same_flows(home: Path, gateway_url: str) -> None:
    consortium = Consortium.load(home)
    person = new_person()
    fields = record("social_insurance", person)
    async with (
        AsyncClient(operations_from(consortium, "registrar.hrss.sz1"), base_url=gateway_url) as reg,
        AsyncClient(operations_from(consortium, "officer.hrss.cd1"), base_url=gateway_url) as hrss,
    ):
        receipt = await reg.put_record("social_insurance", person, fields)
        result = await hrss.request_access(
            receipt.subject, ["social_insurance"], "T2", "social_insurance_transfer"
        )
    assert result.decision == "granted"
    assert result.granted[0].fields == up_to("social_insurance", fields, "T2")


def _get(path: str) -> Flow[bytes]:
    data: bytes = yield Call("GET", path, expect="bytes")
    return data


def test_a_grant_serves_only_the_officer_who_signed_it(client: Clients) -> None:
    person = new_person()
    client("registrar.publicsecurity.sz1").put_record(
        "residence_permit", person, record("residence_permit", person)
    )
    owner = client("officer.education.sz1")
    result = owner.request_access(
        person, ["residence_permit"], "T1", "school_enrolment", inline_ciphertexts=False
    )
    [t0, t1] = result.raw["grants"][0]["tiers"]
    assert len(owner.run(_get(t1["blob_url"]))) == t1["size"]

    other = client("officer.health.sz1")
    with pytest.raises(NotFound) as not_theirs:
        other.fetch_access(result.tx_id)
    assert not_theirs.value.code == "access_event_not_found"
    with pytest.raises(PermissionDenied) as no_grant:
        other.run(_get(t0["blob_url"]))
    assert no_grant.value.code == "grant_required"


def test_a_malformed_gateway_url_is_refused_up_front(home: Path) -> None:
    for url in ("foo", "ftp://host", "http://", "http://h/?q=1"):
        with pytest.raises(ClientError) as error:
            Client.from_home(home, "officer.education.sz1", gateway_url=url)
        assert error.value.code == "gateway_url_invalid"


def _catalogue_with_residence_permit_v2() -> Catalogue:
    """The default catalogue plus a residence_permit v2 that moves a T1 field to T2."""
    documents = [
        CATALOGUE.schema(record_type, version)
        for record_type in CATALOGUE.record_types()
        for version in CATALOGUE.versions(record_type)
    ]
    v2 = copy.deepcopy(CATALOGUE.schema("residence_permit", 1))
    v2["$id"] = "urn:accessledger:catalogue:residence_permit:v2"
    v2["x-version"] = 2
    v2["properties"]["residence_district_code"]["x-tier"] = "T2"
    return Catalogue.from_documents([*documents, v2])


def test_the_sdk_merges_tiers_by_the_schema_version_the_grant_names(
    client: Clients, home: Path, gateway_url: str
) -> None:
    """A client whose catalogue knows a newer version still opens a v1 record by v1."""
    catalogue = _catalogue_with_residence_permit_v2()
    assert catalogue.latest_version("residence_permit") == 2
    person = new_person()
    fields = record("residence_permit", person)
    receipt = client("registrar.publicsecurity.sz1").put_record("residence_permit", person, fields)
    assert receipt.schema_version == 1
    operations = operations_from(
        Consortium.load(home), "officer.education.sz1", catalogue=catalogue
    )
    with Client(operations, base_url=gateway_url) as officer:
        result = officer.request_access(person, ["residence_permit"], "T1", "school_enrolment")
    [granted] = result.granted
    assert result.raw["grants"][0]["schema_version"] == 1
    assert granted.schema_version == 1
    # By v2 the T1 group would hold a T2 field and be refused; by v1 it merges.
    assert granted.fields == up_to("residence_permit", fields, "T1")
    assert granted.fields["residence_district_code"] == fields["residence_district_code"]
    assert granted.to_dict()["schema_version"] == 1
