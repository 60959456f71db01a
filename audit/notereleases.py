"""Note keys released to citizens, traced to the replayed ledger.

Free text about an access (a break-glass justification, a contest reason, a
review note) is stored off-chain, its key sealed to the Audit custodian and,
at store time, to the citizens bound to the event's subject. A citizen whose
credential has no such copy gets the key sealed on demand by the Audit
custodian, which first appends one line per note, fsynced, to
``HOME/custodians/Audit/note-releases.jsonl`` (format
``accessledger-note-release/1``, docs/api.md)::

    {"format": "accessledger-note-release/1", "released_at": "...Z",
     "event_id": "<access event>", "note_kind": "contest_reason",
     "note_tx_id": "<transaction that committed the note's hash>",
     "note_hash": "<sha256 of the text>", "note_record_id": "contest_reason-<tx>",
     "content_address": "<sha256 of the ciphertext>", "citizen_msp_id": "CivilAffairsMSP",
     "citizen_fingerprint": "<sha256 of cert DER>",
     "recipient_key_sha256": "<sha256 of the X25519 public key>", "ledger_height": 57}

For every line the auditor requires, from the replayed ledger alone and in
the state at ``ledger_height`` (the blocks below it; the height may not
exceed the ledger's): the access event was committed by a valid
``RequestAccess`` and carried a note of that kind, transaction and hash; the
credential was bound by ``RegisterCitizen`` to that event's subject; the key
the note was sealed to is the X25519 key registered for the credential; the
credential's certificate was not revoked by a CRL in the channel config in
force and was within its validity period when released (as the gateway
checks it); and the release is not dated before the access was decided.

:class:`NoteFacts` is the block observer that remembers, per block, the
state those checks read; it runs after :class:`~audit.accessledger.AccessLedgerAudit`
and reuses that observer's access events and channel MSP history.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from audit.events import AccessEvent, EventFormatError, parse_ledger_time
from audit.findings import Finding, FindingKind
from audit.keyreleases import certificate_from_pem, read_log, revocation_at
from audit.namespace import ACCESS, CITIZEN, ENC_KEY, WRITERS, json_value, split_key
from crypto.certificates import certificate_fingerprint
from network.fabric.replay import ReplayedBlock
from network.fabric.transactions import ParsedTransaction

if TYPE_CHECKING:
    from audit.accessledger import AccessLedgerAudit

NOTE_RELEASE_FORMAT: Final = "accessledger-note-release/1"
NOTE_RELEASES_FILE: Final = "note-releases.jsonl"
#: How a note kind is named in the log (and to citizens) -> the prefix of its store record id.
NOTE_KINDS: Final[Mapping[str, str]] = {
    "justification": "break_glass_justification",
    "contest_reason": "contest_reason",
    "review_note": "review_note",
}
_TEXT_FIELDS: Final = (
    "event_id", "note_kind", "note_tx_id", "note_hash", "note_record_id", "content_address",
    "citizen_msp_id", "citizen_fingerprint", "recipient_key_sha256",
)  # fmt: skip
_HEX64: Final = re.compile(r"[0-9a-f]{64}")

#: ``(public kind, transaction id, SHA-256 of the text)`` of one note an event carries.
Note = tuple[str, str, str]


@dataclass(frozen=True)
class NoteRelease:
    """One line of a note-release log."""

    line: int
    released_at: datetime
    event_id: str
    note_kind: str
    note_tx_id: str
    note_hash: str
    note_record_id: str
    content_address: str
    citizen_msp_id: str
    citizen_fingerprint: str
    recipient_key_sha256: str
    ledger_height: int

    @classmethod
    def from_dict(cls, data: Any, line: int) -> NoteRelease:
        if not isinstance(data, Mapping) or data.get("format") != NOTE_RELEASE_FORMAT:
            raise EventFormatError(f"not a {NOTE_RELEASE_FORMAT} object")
        missing = [n for n in _TEXT_FIELDS if not isinstance(data.get(n), str)]
        if missing:
            raise EventFormatError(f"lacks text field(s) {', '.join(missing)}")
        height = data.get("ledger_height")
        if not isinstance(height, int) or isinstance(height, bool) or height < 1:
            raise EventFormatError("ledger_height must be a positive integer")
        texts = {n: str(data[n]) for n in _TEXT_FIELDS}
        stored = NOTE_KINDS.get(texts["note_kind"])
        if stored is None:
            raise EventFormatError(f"note_kind {texts['note_kind']!r} is not a note kind")
        if texts["note_record_id"] != f"{stored}-{texts['note_tx_id']}":
            raise EventFormatError("note_record_id is not the record id of that kind and tx id")
        digests = ("note_hash", "content_address", "citizen_fingerprint", "recipient_key_sha256")
        malformed = [n for n in digests if not _HEX64.fullmatch(texts[n])]
        if malformed:
            raise EventFormatError(f"{', '.join(malformed)} must be lowercase hex SHA-256")
        return cls(
            line=line,
            released_at=parse_ledger_time(data.get("released_at"), "released_at"),
            ledger_height=height,
            **texts,
        )

    @property
    def note_key(self) -> tuple[str, str]:
        """``(kind, transaction id)``: which note of the event this is."""
        return self.note_kind, self.note_tx_id


def read_note_releases(path: Path) -> Iterator[NoteRelease | tuple[int, str]]:
    """Releases of a log, or ``(line, problem)`` for a line that is not one."""
    return read_log(path, "note-release log", NoteRelease.from_dict)


def event_notes(event: AccessEvent) -> frozenset[Note]:
    """Every note hash a committed access event holds (request, contests, review outcomes)."""
    found: set[Note] = set()
    justification = event.request.get("justification_hash")
    if isinstance(justification, str):
        found.add(("justification", event.tx_id, justification))
    for contest in event.review.contests:
        found.add(
            ("contest_reason", str(contest.get("contest_id")), str(contest.get("reason_hash")))
        )
    for outcome in event.review.outcomes:
        found.add(("review_note", str(outcome.get("tx_id")), str(outcome.get("note_hash"))))
    return frozenset(found)


def _at(history: list[tuple[int, Any]] | None, height: int) -> Any:
    """The value of the last write below ``height`` (in a block the state at ``height`` holds)."""
    value = None
    for block, written in history or ():
        if block >= height:
            break
        value = written
    return value


@dataclass
class NoteFacts:
    """A block observer keeping, per block, what note releases are traced against.

    ``ledger`` is the AccessLedger observer; it must observe each block
    first (its access events as of the block are read here).
    """

    ledger: AccessLedgerAudit
    #: ``(block, notes)`` of each event, whenever a committed write changed its notes.
    notes: dict[str, list[tuple[int, frozenset[Note]]]] = field(default_factory=dict)
    #: ``(block, subject)`` of each write of a citizen binding, by ``(msp_id, fingerprint)``.
    bindings: dict[tuple[str, str], list[tuple[int, str | None]]] = field(default_factory=dict)
    #: ``(block, sha256 of the X25519 public key)`` of each key registration, by identity.
    keys: dict[tuple[str, str], list[tuple[int, str | None]]] = field(default_factory=dict)
    #: The certificate (PEM) each citizen credential was bound with, by ``(msp_id, fingerprint)``.
    certificates: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def observe(self, replayed: ReplayedBlock, findings: list[Finding]) -> None:
        for result in replayed.validation.results:
            tx = result.parsed
            if not result.valid or tx is None or tx.action is None:
                continue
            if tx.action.chaincode_name != self.ledger.chaincode:
                continue
            function = tx.action.function or ""
            for write in result.writes:
                if write.namespace != self.ledger.chaincode:
                    continue
                object_type, attributes = split_key(write.key)
                if function not in WRITERS.get(object_type, ()):
                    continue  # forged state: reported by the AccessLedger observer, not trusted
                if object_type == ACCESS and len(attributes) == 1:
                    self._event(replayed.number, attributes[0], deleted=write.value is None)
                elif object_type == ENC_KEY and len(attributes) == 2:
                    digest = _key_digest(write.value)
                    self.keys.setdefault((attributes[0], attributes[1]), []).append(
                        (replayed.number, digest)
                    )
                elif object_type == CITIZEN and len(attributes) == 2:
                    self._binding(replayed.number, (attributes[0], attributes[1]), write.value, tx)

    def _event(self, block: int, event_id: str, *, deleted: bool) -> None:
        event = self.ledger.events.get(event_id)
        notes = event_notes(event) if event is not None and not deleted else frozenset()
        history = self.notes.get(event_id)
        if (history[-1][1] if history else frozenset()) != notes:
            self.notes.setdefault(event_id, []).append((block, notes))

    def _binding(
        self, block: int, identity: tuple[str, str], value: bytes | None, tx: ParsedTransaction
    ) -> None:
        entry = json_value(value)
        subject = entry.get("subject") if isinstance(entry, Mapping) else None
        pem = _bound_certificate(tx, identity)
        if not isinstance(subject, str) or pem is None:
            subject = None  # deleted or unreadable: binds nobody from here on
        else:
            self.certificates[identity] = pem
        self.bindings.setdefault(identity, []).append((block, subject))

    # -- the state at a height --------------------------------------------------------------

    def notes_at(self, event_id: str, height: int) -> frozenset[Note]:
        found: frozenset[Note] | None = _at(self.notes.get(event_id), height)
        return found or frozenset()

    def subject_at(self, identity: tuple[str, str], height: int) -> str | None:
        subject: str | None = _at(self.bindings.get(identity), height)
        return subject

    def key_at(self, identity: tuple[str, str], height: int) -> str | None:
        digest: str | None = _at(self.keys.get(identity), height)
        return digest


def _key_digest(value: bytes | None) -> str | None:
    """SHA-256 of a registered X25519 public key (``None`` if deleted or unreadable)."""
    entry = json_value(value)
    try:
        public = base64.b64decode(str(entry["public_key"]), validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None  # the AccessLedger observer reports a malformed entry
    return hashlib.sha256(public).hexdigest()


def _bound_certificate(tx: ParsedTransaction, identity: tuple[str, str]) -> bytes | None:
    """The certificate a ``RegisterCitizen`` bound, if it is the one its key names."""
    assert tx.action is not None
    argument = json_value(tx.action.args[1]) if len(tx.action.args) > 1 else None
    pem = argument.get("certificate") if isinstance(argument, Mapping) else None
    if not isinstance(pem, str):
        return None
    data = pem.encode("ascii", "replace")
    try:
        fingerprint = certificate_fingerprint(certificate_from_pem(data))
    except ValueError:
        return None
    return data if fingerprint == identity[1] else None


# -- the checks ----------------------------------------------------------------------------


def _revoked(facts: NoteFacts, release: NoteRelease, identity: tuple[str, str]) -> str | None:
    """Why the channel refused the credential's certificate at the release's height, if it did."""
    pem = facts.certificates.get(identity)
    if pem is None:
        return None  # no binding: reported as such
    return revocation_at(
        facts.ledger.msp_history, release.citizen_msp_id, pem, release.ledger_height
    )


def _problem(release: NoteRelease, facts: NoteFacts, height: int) -> str | None:
    """Which check the release fails, or ``None`` if the ledger accounts for it."""
    at = release.ledger_height
    if at > height:
        return f"names ledger height {at}, beyond the replayed ledger's height {height}"
    event = facts.ledger.events.get(release.event_id)
    if event is None or event.block is None:
        return "names no committed, valid access event"
    if event.block >= at:
        return (
            f"names ledger height {at}, a state before the access event was committed"
            f" (block {event.block})"
        )
    carried = [n for n in facts.notes_at(release.event_id, at) if n[:2] == release.note_key]
    if not carried:
        return (
            f"names a {release.note_kind} note of transaction {release.note_tx_id[:12]}… that"
            f" the event did not carry at ledger height {at}"
        )
    if all(note_hash != release.note_hash for *_, note_hash in carried):
        return "names another note hash than the one the ledger holds for that note"
    identity = (release.citizen_msp_id, release.citizen_fingerprint)
    subject = facts.subject_at(identity, at)
    if subject is None:
        return f"went to a credential not bound to a citizen at ledger height {at}"
    if subject != event.subject:
        return "went to a credential bound to another subject than the event's"
    if facts.key_at(identity, at) != release.recipient_key_sha256:
        return (
            "was sealed to another key than the one the ledger registered for the"
            f" credential at ledger height {at}"
        )
    revoked = _revoked(facts, release, identity)
    if revoked is not None:
        return revoked
    if release.released_at < event.decided_at:
        return "was released before the access was decided"
    pem = facts.certificates.get(identity)
    if pem is not None:
        certificate = certificate_from_pem(pem)
        valid = certificate.not_valid_before_utc <= release.released_at
        if not (valid and release.released_at <= certificate.not_valid_after_utc):
            return "was released to a certificate outside its validity period at release time"
    return None


def check_note_releases(path: Path, facts: NoteFacts, *, height: int) -> tuple[list[Finding], int]:
    """Findings for every line the replayed ledger (``height`` blocks) does not account for.

    Returns the findings and how many lines were traced.
    """
    findings = []
    traced = 0
    for item in read_note_releases(path):
        if isinstance(item, tuple):
            line, unreadable = item
            findings.append(Finding(FindingKind.NOTE_RELEASE, f"{path} line {line}: {unreadable}"))
            continue
        problem = _problem(item, facts, height)
        if problem is None:
            traced += 1
            continue
        event = facts.ledger.events.get(item.event_id)
        findings.append(
            Finding(
                FindingKind.NOTE_RELEASE,
                f"{path} line {item.line}: release of the {item.note_kind} note of access event"
                f" {item.event_id} to {item.citizen_msp_id} {problem}",
                block=event.block if event else None,
                tx_index=event.tx_index if event else None,
                tx_id=event.tx_id if event else None,
            )
        )
    return findings, traced


def note_release_logs(home: Path) -> list[Path]:
    """Every custodian's note-release log in a home: ``HOME/custodians/*/note-releases.jsonl``."""
    return sorted((home / "custodians").glob(f"*/{NOTE_RELEASES_FILE}"))
