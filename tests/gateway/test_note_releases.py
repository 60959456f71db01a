"""Over real HTTP: every note key the Audit custodian seals on demand is logged first.

A citizen whose credential has no stored copy of a note's key gets it sealed
on the spot by the Audit custodian (``GET /v1/me/notes/{event_id}``); each
such release is one fsynced line of ``HOME/custodians/Audit/note-releases.jsonl``
(format ``accessledger-note-release/1``) written before the answer leaves.
Copies sealed when the note was stored are not releases. When the log cannot
be written nothing is released. The scene is :mod:`tests.gateway.note_release_scene`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaincode.caller import certificate_fingerprint
from chaincode.codec import parse_time
from gateway.client.notes import open_notes
from gateway.service.notes import NOTES_ORG
from gateway.service.releases import NOTE_RELEASE_FORMAT
from tests.gateway.note_release_scene import BETWEEN, TEXTS, NoteScene, note_release_scene

PROBLEM = "application/problem+json"
STORED_KINDS = {
    "justification": "break_glass_justification",
    "contest_reason": "contest_reason",
    "review_note": "review_note",
}


@pytest.fixture(scope="module")
def scene(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoteScene]:
    with note_release_scene(demo_home, tmp_path_factory.mktemp("note-releases")) as started:
        yield started


def _read(scene: NoteScene, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(answer, the log lines it added)`` of one ``GET /v1/me/notes`` by ``name``."""
    before = scene.lines()
    client = scene.client(name)
    try:
        response = client.request("GET", f"/v1/me/notes/{scene.event_id}")
    finally:
        client.close()
    assert response.status_code == 200, response.text
    after = scene.lines()
    assert after[: len(before)] == before  # append-only
    answer: dict[str, Any] = response.json()
    # What came back opens, with the credential's own key, to the texts the ledger hashes.
    opened = open_notes(
        answer,
        event_id=scene.event_id,
        private_key=scene.consortium.encryption_key(name),
        public_key=scene.consortium.encryption_public_key(name),
    )
    assert {note.kind: note.text for note in opened} == TEXTS
    return answer, after[len(before) :]


def test_an_on_demand_read_logs_one_line_per_released_note(scene: NoteScene) -> None:
    identity = scene.consortium.identity("citizen.c2")
    public = scene.consortium.encryption_public_key("citizen.c2")
    started = scene.gateway.clock()
    answer, added = _read(scene, "citizen.c2")
    finished = scene.gateway.clock()
    assert len(added) == 3
    by_kind = {line["note_kind"]: line for line in added}
    assert set(by_kind) == set(TEXTS)
    shown = {note["kind"]: note for note in answer["notes"]}
    height = scene.gateway.height()
    for kind, line in by_kind.items():
        assert set(line) == {
            "format", "released_at", "event_id", "note_kind", "note_tx_id", "note_hash",
            "note_record_id", "content_address", "citizen_msp_id", "citizen_fingerprint",
            "recipient_key_sha256", "ledger_height",
        }  # fmt: skip
        assert line["format"] == NOTE_RELEASE_FORMAT
        assert line["event_id"] == scene.event_id
        assert line["note_tx_id"] == scene.note_tx[kind] == shown[kind]["tx_id"]
        assert line["note_hash"] == hashlib.sha256(TEXTS[kind].encode()).hexdigest()
        assert line["note_hash"] == shown[kind]["note_hash"]
        assert line["note_record_id"] == f"{STORED_KINDS[kind]}-{scene.note_tx[kind]}"
        assert line["content_address"] == shown[kind]["content_address"]
        assert line["citizen_msp_id"] == identity.msp_id
        assert line["citizen_fingerprint"] == certificate_fingerprint(identity.certificate)
        assert line["recipient_key_sha256"] == hashlib.sha256(public).hexdigest()
        assert base64.b64decode(shown[kind]["recipient_public_key"]) == public
        # The state checked already held c2's binding, and is no later than the ledger now.
        assert scene.c2_bound_block < line["ledger_height"] <= height
        released = parse_time(line["released_at"], what="released_at")
        assert line["released_at"].endswith("Z")
        assert started <= released <= finished
    # No personal data: neither the texts, nor the person's number, nor their pseudonym.
    logged = scene.log.read_text(encoding="utf-8")
    for text in (*TEXTS.values(), scene.person, scene.subject):
        assert text not in logged
    assert scene.log.stat().st_mode & 0o777 == 0o600
    assert scene.log.parent.name == NOTES_ORG


def test_a_read_through_copies_sealed_when_stored_logs_nothing(scene: NoteScene) -> None:
    answer, added = _read(scene, "citizen.c1")
    assert added == []
    assert len(answer["notes"]) == 3


def test_only_the_notes_without_a_stored_copy_are_logged(scene: NoteScene) -> None:
    # citizen.n1 was bound after the justification was stored, before the other two notes.
    identity = scene.consortium.identity(BETWEEN)
    _, added = _read(scene, BETWEEN)
    assert [(line["note_kind"], line["note_tx_id"]) for line in added] == [
        ("justification", scene.event_id)
    ]
    assert added[0]["citizen_fingerprint"] == certificate_fingerprint(identity.certificate)


def test_a_failing_log_write_releases_nothing(scene: NoteScene) -> None:
    kept = scene.log.with_name("kept.jsonl")
    if scene.log.exists():
        scene.log.rename(kept)
    scene.log.mkdir()  # a directory where the log should be: every append fails
    try:
        client = scene.client("citizen.c2")
        try:
            refused = client.request("GET", f"/v1/me/notes/{scene.event_id}")
            # Copies sealed when the notes were stored are no release: still served.
            stored = scene.client("citizen.c1")
            try:
                served = stored.request("GET", f"/v1/me/notes/{scene.event_id}")
            finally:
                stored.close()
        finally:
            client.close()
    finally:
        scene.log.rmdir()
        if kept.exists():
            kept.rename(scene.log)
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith(PROBLEM)
    problem = refused.json()
    assert problem["code"] == "release_log_failed"
    assert problem["status"] == 503
    assert "sealed_key" not in refused.text
    assert "notes" not in problem
    assert "Traceback" not in refused.text
    assert served.status_code == 200, served.text
    assert len(served.json()["notes"]) == 3
