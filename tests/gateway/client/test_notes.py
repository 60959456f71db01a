"""A citizen reads the notes about an access to their data, over real HTTP (``/v1/me/notes``).

One break-glass access about one person, contested by the person and
reviewed by an auditor, leaves three notes off-chain. The person's citizen
credentials read all three, decrypted here and checked against the ledger's
hashes; the Audit custodian still opens them; nobody else gets a key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from chaincode.caller import certificate_fingerprint
from cli.main import app
from crypto.consortium import (
    X25519_FILE,
    Consortium,
    DemoIdentity,
    create_demo_consortium,
    identity_dir,
    issue_identity,
)
from crypto.envelope import generate_x25519_keypair
from crypto.identity import CITIZEN_ROLE, IdentityKind
from gateway.client import Client, Conflict, NotFound, Operations, PermissionDenied
from gateway.client.errors import ClientError, PayloadError
from gateway.client.flows import Flow
from gateway.client.http import Call
from gateway.client.keys import rotate_encryption_key
from gateway.client.notes import Note, my_notes, open_notes
from gateway.service import queries as queries_module
from gateway.service.ledger import LedgerClient
from gateway.service.notes import CONTEST_REASON, JUSTIFICATION, NOTES_ORG, REVIEW_NOTE
from gateway.service.policy import PolicyCache
from gateway.service.queries import QueryService
from gateway.store import DepartmentStore, default_store_path
from network.engine.ledgerfile import open_ledger
from network.engine.network import EmbeddedNetwork
from network.engine.statedb import StateDB
from tests.gateway.client.people import new_person, record
from tests.gateway.test_app_support import read_note

JUSTIFICATION_TEXT = "Unconscious patient, brought in by ambulance; no relative reachable."
REASON_TEXT = "Ich war nie in dieser Notaufnahme -- 我从未去过这家医院."
REVIEW_TEXT = "Emergency confirmed by the duty log of ward 3."
#: Extra CivilAffairs citizens of this module's home: with a key, without, key registered late.
EXTRA_CITIZENS = ("citizen.second", "citizen.nokey", "citizen.late")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo home plus three more citizen credentials (two without an X25519 key file)."""
    path = tmp_path_factory.mktemp("notes") / "home"
    now = datetime.now(UTC)
    consortium = create_demo_consortium(path, now=now)
    authority = consortium.certificate_authority("CivilAffairs")
    for name in EXTRA_CITIZENS:
        spec = DemoIdentity(name, "CivilAffairs", IdentityKind.CITIZEN, {"role": CITIZEN_ROLE})
        issue_identity(path, authority, spec, now)
    for name in ("citizen.nokey", "citizen.late"):
        (identity_dir(path, "CivilAffairs", name) / X25519_FILE).unlink()
    return path


@dataclass(frozen=True)
class Scene:
    home: Path
    url: str
    subject: str
    event_id: str
    contest_tx: str
    review_tx: str
    plain_event_id: str
    late_key: bytes  # citizen.late's X25519 private key, registered after the notes


def _client(scene_home: Path, url: str, name: str) -> Client:
    return Client.from_home(scene_home, name, gateway_url=url)


@pytest.fixture(scope="module")
def scene(home: Path, gateway_url: str) -> Scene:
    consortium = Consortium.load(home)
    person = new_person()
    with _client(home, gateway_url, "registrar.health.sz1") as registrar:
        receipt = registrar.put_record("health_record", person, record("health_record", person))
    other = new_person()
    with _client(home, gateway_url, "registrar.tax.sz1") as registrar:
        other_receipt = registrar.put_record("tax_record", other, record("tax_record", other))
    with _client(home, gateway_url, "registrar.civilaffairs.sz1") as civil:
        for name in ("citizen.c1", *EXTRA_CITIZENS):
            civil.register_citizen(consortium.identity(name).cert_pem().decode(), receipt.subject)
        pem = consortium.identity("citizen.c2").cert_pem().decode()
        civil.register_citizen(pem, other_receipt.subject)
    with _client(home, gateway_url, "officer.health.sz2") as physician:
        access = physician.request_access(
            person,
            ["health_record"],
            "T3",
            "emergency_care",
            emergency=True,
            justification=JUSTIFICATION_TEXT,
        )
    assert access.decision == "granted"
    with _client(home, gateway_url, "citizen.c1") as citizen:
        contest = citizen.contest(access.event_id, REASON_TEXT)
    with _client(home, gateway_url, "auditor.audit.sz1") as auditor:
        review = auditor.review(access.event_id, "justified", REVIEW_TEXT)
    with _client(home, gateway_url, "officer.health.sz1") as settlement:
        plain = settlement.request_access(person, ["health_record"], "T1", "medical_settlement")
    # citizen.late registers an X25519 key only now, after the notes were stored.
    private, _ = generate_x25519_keypair()
    late = Operations(consortium.identity("citizen.late"), encryption_key=private)
    with Client(late, base_url=gateway_url) as client:
        client.register_encryption_key()
    return Scene(
        home,
        gateway_url,
        receipt.subject,
        access.event_id,
        contest.tx_id,
        review.tx_id,
        plain.event_id,
        private,
    )


def _audit_store(home: Path) -> DepartmentStore:
    """The Audit department's store, opened beside the running gateway (SQLite, WAL)."""
    return DepartmentStore.open(NOTES_ORG, f"sqlite:///{default_store_path(home, NOTES_ORG)}")


def _raw(event_id: str) -> Flow[Any]:
    answer = yield Call("GET", f"/v1/me/notes/{event_id}")
    return answer


def _read(scene: Scene, name: str) -> list[Note]:
    with _client(scene.home, scene.url, name) as client:
        return client.run(my_notes(client.operations, scene.event_id))


def test_the_subject_reads_justification_contest_reason_and_review_note(scene: Scene) -> None:
    notes = {note.kind: note for note in _read(scene, "citizen.c1")}
    assert set(notes) == {"justification", "contest_reason", "review_note"}
    assert notes["justification"].text == JUSTIFICATION_TEXT
    assert notes["justification"].tx_id == scene.event_id
    assert notes["contest_reason"].text == REASON_TEXT
    assert notes["contest_reason"].tx_id == scene.contest_tx
    assert notes["review_note"].text == REVIEW_TEXT
    assert notes["review_note"].tx_id == scene.review_tx


def test_every_keyed_credential_of_the_subject_gets_its_own_copy(scene: Scene) -> None:
    # citizen.second never acted: the gateway found it through the ledger's citizen bindings.
    texts = {note.kind: note.text for note in _read(scene, "citizen.second")}
    assert texts == {
        "justification": JUSTIFICATION_TEXT,
        "contest_reason": REASON_TEXT,
        "review_note": REVIEW_TEXT,
    }


def test_the_audit_custodian_still_opens_every_note(scene: Scene) -> None:
    assert read_note(scene.home, JUSTIFICATION, scene.event_id)[1] == JUSTIFICATION_TEXT
    assert read_note(scene.home, CONTEST_REASON, scene.contest_tx)[1] == REASON_TEXT
    assert read_note(scene.home, REVIEW_NOTE, scene.review_tx)[1] == REVIEW_TEXT


def test_the_audit_store_holds_no_plaintext(scene: Scene) -> None:
    data = default_store_path(scene.home, NOTES_ORG).read_bytes()
    wal = default_store_path(scene.home, NOTES_ORG).with_suffix(".sqlite-wal")
    if wal.exists():
        data += wal.read_bytes()
    for text in (JUSTIFICATION_TEXT, REASON_TEXT, REVIEW_TEXT):
        assert text.encode("utf-8") not in data


def test_another_citizen_gets_not_found_and_no_key(scene: Scene) -> None:
    with _client(scene.home, scene.url, "citizen.c2") as client, pytest.raises(NotFound) as refused:
        client.run(_raw(scene.event_id))
    assert refused.value.status == 404
    assert refused.value.code == "not_found"
    assert "sealed_key" not in json.dumps(refused.value.problem)
    assert refused.value.problem["type"].endswith("not_found")


@pytest.mark.parametrize("name", ["officer.health.sz2", "auditor.audit.sz1"])
def test_identities_that_are_not_bound_citizens_are_refused(scene: Scene, name: str) -> None:
    with _client(scene.home, scene.url, name) as client, pytest.raises(PermissionDenied) as no:
        client.run(_raw(scene.event_id))
    assert no.value.code == "citizen_not_registered"


def test_a_citizen_without_an_x25519_key_gets_a_clear_problem(scene: Scene) -> None:
    with _client(scene.home, scene.url, "citizen.nokey") as client:
        with pytest.raises(Conflict) as conflict:
            client.run(_raw(scene.event_id))
        assert conflict.value.code == "encryption_key_not_registered"
        assert conflict.value.status == 409
        assert "RegisterEncryptionKey" in conflict.value.message
        # The SDK refuses up front: it has no key to open a note with.
        with pytest.raises(ClientError) as local:
            client.run(my_notes(client.operations, scene.event_id))
        assert local.value.code == "no_encryption_key"


def test_a_key_registered_after_the_notes_were_stored_gets_them_sealed_on_demand(
    scene: Scene,
) -> None:
    # No copy was sealed to citizen.late when the notes were stored; asking now, as a citizen
    # the contract confirms for this subject, the Audit custodian seals them to its key.
    identity = Consortium.load(scene.home).identity("citizen.late")
    late = Operations(identity, encryption_key=scene.late_key)
    with Client(late, base_url=scene.url) as client:
        notes = client.run(my_notes(client.operations, scene.event_id))
    assert {note.kind: note.text for note in notes} == {
        "justification": JUSTIFICATION_TEXT,
        "contest_reason": REASON_TEXT,
        "review_note": REVIEW_TEXT,
    }
    # Sealed for the answer, not kept: the store still holds no copy for this credential.
    fingerprint = certificate_fingerprint(late.identity.certificate)
    store = _audit_store(scene.home)
    try:
        for kind, tx_id in ((JUSTIFICATION, scene.event_id), (REVIEW_NOTE, scene.review_tx)):
            copies = store.list_recipient_keys(record_id=f"{kind}-{tx_id}")
            assert fingerprint not in {copy.cert_fingerprint for copy in copies}
    finally:
        store.close()


def test_after_an_encryption_key_rotation_the_notes_come_sealed_to_the_new_key(
    scene: Scene,
) -> None:
    # citizen.second's stored copies are sealed to its old key; the answer must not be.
    with _client(scene.home, scene.url, "citizen.second") as client:
        old_public = client.operations.public_key
        rotate_encryption_key(scene.home, "citizen.second", client)
        assert client.operations.public_key != old_public
        answer = client.run(_raw(scene.event_id))
        assert {n["recipient_public_key"] for n in answer["notes"]} == {
            base64.b64encode(client.operations.public_key).decode()
        }
        notes = client.run(my_notes(client.operations, scene.event_id))
    assert {note.kind for note in notes} == {"justification", "contest_reason", "review_note"}


def test_an_access_without_notes_is_note_not_found(scene: Scene) -> None:
    with _client(scene.home, scene.url, "citizen.c1") as client, pytest.raises(NotFound) as none:
        client.run(_raw(scene.plain_event_id))
    assert none.value.code == "note_not_found"


def test_a_malformed_event_id_is_a_problem(scene: Scene) -> None:
    with _client(scene.home, scene.url, "citizen.c1") as client, pytest.raises(ClientError) as bad:
        client.run(_raw("-not-an-id"))
    assert bad.value.status == 422
    assert bad.value.problem.get("code")


def test_the_sdk_refuses_a_note_that_is_not_the_ledgers(scene: Scene) -> None:
    with _client(scene.home, scene.url, "citizen.c1") as client:
        answer = client.run(_raw(scene.event_id))
        operations = client.operations
    assert operations.encryption_key is not None
    assert operations.public_key is not None
    keys = {"private_key": operations.encryption_key, "public_key": operations.public_key}
    assert len(open_notes(answer, event_id=scene.event_id, **keys)) == 3

    wrong_hash = json.loads(json.dumps(answer))
    wrong_hash["notes"][0]["note_hash"] = "0" * 64
    with pytest.raises(PayloadError, match="ledger's hash"):
        open_notes(wrong_hash, event_id=scene.event_id, **keys)

    swapped = json.loads(json.dumps(answer))
    first, second = swapped["notes"][0], swapped["notes"][1]
    for member in ("ciphertext", "content_address", "sealed_key"):
        first[member], second[member] = second[member], first[member]
    with pytest.raises(PayloadError, match="does not open"):
        open_notes(swapped, event_id=scene.event_id, **keys)

    altered = json.loads(json.dumps(answer))
    altered["notes"][0]["content_address"] = "f" * 64
    with pytest.raises(PayloadError, match="content address"):
        open_notes(altered, event_id=scene.event_id, **keys)


def test_cli_prints_the_notes_and_refuses_others_in_one_line(scene: Scene) -> None:
    runner = CliRunner(env={"ACCESSLEDGER_HOME": None, "ACCESSLEDGER_GATEWAY_URL": None})
    common = ["--event", scene.event_id, "--home", str(scene.home), "--gateway", scene.url]
    result = runner.invoke(app, ["citizen", "notes", "--as", "citizen.c1", *common, "--json"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["event_id"] == scene.event_id
    assert {n["kind"]: n["text"] for n in shown["notes"]} == {
        "justification": JUSTIFICATION_TEXT,
        "contest_reason": REASON_TEXT,
        "review_note": REVIEW_TEXT,
    }
    table = runner.invoke(app, ["citizen", "notes", "--as", "citizen.c1", *common])
    assert table.exit_code == 0, table.stderr
    assert "review_note" in table.stdout

    refused = runner.invoke(app, ["citizen", "notes", "--as", "citizen.c2", *common])
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr.strip().count("\n") == 0
    assert "[not_found]" in refused.stderr


class _CommittedState:
    """The part of an embedded network that committed-state reads use: its store."""

    def __init__(self, store: StateDB) -> None:
        self.store = store


def test_the_subjects_credentials_are_indexed_or_found_page_by_page_within_a_bound(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    consortium = Consortium.load(scene.home, public_only=True)
    mine = {
        (
            consortium.identity(name).msp_id,
            certificate_fingerprint(consortium.identity(name).certificate),
        )
        for name in ("citizen.c1", *EXTRA_CITIZENS)
    }
    store = open_ledger(scene.home, verify="tail")
    try:
        ledger = LedgerClient(cast(EmbeddedNetwork, _CommittedState(store)))
        queries = QueryService(ledger, cast(PolicyCache, None))
        assert set(queries.subject_credentials(scene.subject)) == mine  # through the index
        # A ledger from before the subject index (no ``citizen_index`` mark) is scanned.
        monkeypatch.setattr(queries_module, "CITIZEN_INDEX_KEY", "no_such_mark")
        monkeypatch.setattr(queries_module, "_SCAN_PAGE", 2)  # five bindings: three pages
        assert set(queries.subject_credentials(scene.subject)) == mine
        keyed = {holder.cert_fingerprint for holder in queries.subject_key_holders(scene.subject)}
        nokey = certificate_fingerprint(consortium.identity("citizen.nokey").certificate)
        assert keyed == {fp for _, fp in mine} - {nokey}

        monkeypatch.setattr(queries_module, "CITIZEN_SCAN_LIMIT", 1)
        assert len(queries.subject_credentials(scene.subject)) <= 1
        assert "stopped looking for the credentials" in caplog.text
    finally:
        store.close()
