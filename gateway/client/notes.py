"""SDK flow for a citizen's notes: read the free text about an access to their data.

A break-glass justification, the reasons a citizen gave when contesting and
the auditor's review notes are kept off the ledger, encrypted; the ledger
holds each text's SHA-256. ``GET /v1/me/notes/{event_id}`` serves, for an
access event about the calling citizen, each note's ciphertext, its key
sealed to the citizen's registered X25519 key and the hash the ledger
holds. :func:`my_notes` opens them here, in the client, and checks each::

    with Client.from_home(home, "citizen.c1") as client:
        for note in client.run(notes.my_notes(client.operations, event_id)):
            print(note.kind, note.text)

Per note: the ciphertext must hash to its content address; the key must be
sealed to this client's X25519 key and open with its private key;
XChaCha20-Poly1305 authenticates the ciphertext under the note's id
(``<kind>-<tx_id>``, derived here, not taken from the gateway), kind and
tier; the text's SHA-256 must be the ledger's hash. Any failure is a
:class:`~gateway.client.errors.PayloadError` and nothing is returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from crypto.envelope import AssociatedData, decrypt_tier, open_sealed_key
from crypto.errors import AccessLedgerError
from gateway.client.errors import ClientError, PayloadError, ProtocolError
from gateway.client.flows import Operations
from gateway.client.http import Call, path_segment
from gateway.client.session import Flow

NOTES_PATH: Final = "/v1/me/notes"
#: The note kind as the API names it -> the kind its id and associated data carry.
_STORED_KINDS: Final = {
    "justification": "break_glass_justification",
    "contest_reason": "contest_reason",
    "review_note": "review_note",
}
_NOTE_TIER: Final = "T3"


@dataclass(frozen=True)
class Note:
    """One note about an access event, decrypted and checked against the ledger's hash."""

    #: ``justification``, ``contest_reason`` or ``review_note``.
    kind: str
    #: The transaction that committed the note's hash (the request, contest or review).
    tx_id: str
    #: SHA-256 of ``text`` as the ledger holds it.
    note_hash: str
    content_address: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "tx_id": self.tx_id,
            "note_hash": self.note_hash,
            "content_address": self.content_address,
            "text": self.text,
        }


def my_notes(ops: Operations, event_id: str) -> Flow[list[Note]]:
    """``GET /v1/me/notes/{event_id}``: the notes about an access to my data, decrypted here."""
    if ops.encryption_key is None or ops.public_key is None:
        raise ClientError(
            f"identity {ops.identity.name} has no X25519 key here to open notes with",
            code="no_encryption_key",
        )
    answer = yield Call("GET", f"{NOTES_PATH}/{path_segment(event_id)}")
    return open_notes(
        answer, event_id=event_id, private_key=ops.encryption_key, public_key=ops.public_key
    )


def open_notes(answer: Any, *, event_id: str, private_key: bytes, public_key: bytes) -> list[Note]:
    """Check and decrypt the gateway's ``NoteList`` answer (module docstring)."""
    if not isinstance(answer, Mapping) or answer.get("event_id") != event_id:
        raise ProtocolError(f"the notes answer is not about access event {event_id}")
    entries = answer.get("notes")
    if not isinstance(entries, list):
        raise ProtocolError("the notes answer has no list of notes")
    return [_open(entry, private_key, public_key) for entry in entries]


def _b64(entry: Mapping[str, Any], member: str) -> bytes:
    try:
        return base64.b64decode(str(entry[member]), validate=True)
    except (KeyError, binascii.Error, ValueError):
        raise ProtocolError(f"note member {member} is missing or not base64") from None


def _text(entry: Mapping[str, Any], member: str) -> str:
    value = entry.get(member)
    if not isinstance(value, str):
        raise ProtocolError(f"note member {member} is missing or not a string")
    return value


def _open(entry: Any, private_key: bytes, public_key: bytes) -> Note:
    if not isinstance(entry, Mapping):
        raise ProtocolError("a note is not an object")
    kind = _text(entry, "kind")
    if kind not in _STORED_KINDS:
        raise ProtocolError(f"a note has an unknown kind {kind!r}")
    tx_id, note_hash = _text(entry, "tx_id"), _text(entry, "note_hash")
    address = _text(entry, "content_address")
    ciphertext = _b64(entry, "ciphertext")
    if hashlib.sha256(ciphertext).hexdigest() != address:
        raise PayloadError(f"the {kind} ciphertext does not hash to its content address")
    if not hmac.compare_digest(_b64(entry, "recipient_public_key"), public_key):
        raise PayloadError(
            f"the {kind} key is sealed to another X25519 key than this client's"
            " (rotated since the note was stored?)",
            code="note_sealed_to_other_key",
        )
    stored_kind = _STORED_KINDS[kind]
    record_id = f"{stored_kind}-{tx_id}"
    try:
        key = open_sealed_key(_b64(entry, "sealed_key"), private_key)
        plain = decrypt_tier(key, ciphertext, AssociatedData(record_id, 1, stored_kind, _NOTE_TIER))
        text = plain.decode("utf-8")
    except (AccessLedgerError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the {kind} of {tx_id} does not open: {exc}") from None
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != note_hash:
        raise PayloadError(f"the {kind} of {tx_id} does not hash to the ledger's hash")
    return Note(kind=kind, tx_id=tx_id, note_hash=note_hash, content_address=address, text=text)


__all__ = ["NOTES_PATH", "Note", "my_notes", "open_notes"]
