"""Free text that may name people -- justifications, contest reasons, review notes -- off-chain.

The ledger holds only the SHA-256 of such text (a break-glass request's
``justification_hash``, a contest's ``reason_hash``, a review's
``note_hash``). When a client hands the gateway the text itself, beside the
proposal, it must hash to the value the proposal's argument commits to; the
gateway then encrypts it under a fresh key (associated data: the note's id,
kind and tier T3), seals the key to the Audit department's custodian and
stores both in the Audit department's store under the id ``<kind>-<tx_id>``.
An auditor's custodian can open it; the text never appears on the ledger or
in logs (I1).

The note is also the subject's to read (DESIGN.md section 5): the same key
is sealed to the registered X25519 key of every citizen credential the
committed ledger binds to the subject of the access event, and kept beside
the custodian's copy (the store's ``recipient_key`` rows). Who the subject
is comes from what the transaction commits to: the signed request document
(justification), the contesting citizen and their pseudonym (contest
reason), the committed event under review (review note). A citizen who
asks later with a credential that has no copy sealed to its current key --
bound after the note was stored, renewed, or with a rotated X25519 key --
gets one sealed on the spot: the Audit custodian opens the note key and
seals it to the key the ledger registers for that credential, after the
contract has confirmed the caller is a citizen of the event's subject. Such
an on-demand release is checked against one committed snapshot (the event
holds the note, the credential is bound to the event's subject, its
registered key, the CRLs in force) and appended, fsynced, to
``HOME/custodians/Audit/note-releases.jsonl`` *before* the key leaves
(format ``accessledger-note-release/1``, docs/api.md), so audit replay can
trace it like a payload key release. Copies sealed when the note was stored
are not releases and are not logged.

:func:`text_hooks` is the one way a route stores a note: it returns the
before-endorsement check and the after-endorsement store for
:meth:`~gateway.service.core.GatewayService.propose`. :func:`subject_notes`
serves ``GET /v1/me/notes/{event_id}``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import Field

from crypto.envelope import (
    AssociatedData,
    content_address,
    encrypt_tier,
    generate_tier_key,
    seal_key,
)
from crypto.identity import Identity
from gateway.access_events import require_channel_member
from gateway.custodian_keys import Sealing
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.schemas import Response
from gateway.service.notereleases import NoteOpener, release_snapshot
from gateway.service.queries import KeyHolder, QueryService
from gateway.service.releases import append_before_release, note_release_entry
from gateway.store import (
    RecipientKeyEntry,
    RecordErasedError,
    StoreBusyError,
    StoreRegistry,
    TierKeyNotFoundError,
)

if TYPE_CHECKING:
    from gateway.service.core import AfterEndorse, BeforeEndorse
    from gateway.service.transactions import PendingTransaction
    from network.engine.proposal import Proposal

#: The department whose custodian and store keep the off-chain free text.
NOTES_ORG: Final = "Audit"
logger = logging.getLogger("accessledger.gateway")
_HEX64 = r"^[0-9a-f]{64}$"
NOTE_TIER: Final = "T3"

#: Note kinds (the prefix of the store record id, and the record type in the associated data).
CONTEST_REASON: Final = "contest_reason"
REVIEW_NOTE: Final = "review_note"
JUSTIFICATION: Final = "break_glass_justification"

#: How each kind is named to citizens (``GET /v1/me/notes``) and in the SDK.
PublicKind = Literal["justification", "contest_reason", "review_note"]
PUBLIC_KINDS: Final[Mapping[str, PublicKind]] = {
    JUSTIFICATION: "justification",
    CONTEST_REASON: "contest_reason",
    REVIEW_NOTE: "review_note",
}

#: Reads the hash a proposal's argument commits to.
CommittedHash = Callable[[Mapping[str, Any]], object]
#: Who, besides the Audit custodian, may read the note of an endorsed transaction.
Readers = Callable[["PendingTransaction"], Sequence[KeyHolder]]


def note_id(kind: str, tx_id: str) -> str:
    """The store record id of the note of transaction ``tx_id``."""
    return f"{kind}-{tx_id}"


def text_sha256(text: str) -> str:
    """Lowercase hex SHA-256 of ``text`` (UTF-8), as the ledger refers to it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_hash(
    text: str, expected: object, *, member: str, tx_id: str, code: str = "note_hash_mismatch"
) -> None:
    """Refuse text whose SHA-256 is not the hash the proposal commits to (``422 code``).

    Text with no UTF-8 form (a lone surrogate) has no such hash and cannot be
    stored: ``422 request_invalid``. The request schema refuses it already.
    """
    try:
        digest = text_sha256(text)
    except UnicodeEncodeError:
        raise GatewayError(
            "the text is not valid Unicode (it holds a lone surrogate)",
            code="request_invalid",
            status=422,
            tx_id=tx_id,
        ) from None
    if digest != expected:
        raise GatewayError(
            f"SHA-256 of the text is not the proposal's {member}",
            code=code,
            status=422,
            tx_id=tx_id,
        )


def store_note(
    stores: StoreRegistry,
    sealing: Sealing,
    *,
    kind: str,
    tx_id: str,
    text: str,
    readers: Sequence[KeyHolder] = (),
) -> str:
    """Encrypt and store ``text``; return its content address.

    The key is sealed to the Audit custodian and, in ``recipient_key`` rows,
    to each of ``readers`` (the subject's citizens).
    """
    record_id = note_id(kind, tx_id)
    key = generate_tier_key()
    ciphertext = encrypt_tier(
        key, text.encode("utf-8"), AssociatedData(record_id, 1, kind, NOTE_TIER)
    )
    store = stores.store(NOTES_ORG)
    address = store.put_blob(ciphertext, address=content_address(ciphertext))
    with sealing(NOTES_ORG) as (custodian_public, key_id):
        store.put_tier_key(
            record_id=record_id,
            version=1,
            tier=NOTE_TIER,
            sealed_key=seal_key(key, custodian_public),
            address=address,
            size=len(ciphertext),
            key_id=key_id,
        )
    for reader in readers:
        store.put_recipient_key(
            RecipientKeyEntry(
                record_id=record_id,
                version=1,
                tier=NOTE_TIER,
                msp_id=reader.msp_id,
                cert_fingerprint=reader.cert_fingerprint,
                public_key=reader.public_key,
                sealed_key=seal_key(key, reader.public_key),
            )
        )
    return address


def argument_member(member: str) -> CommittedHash:
    """The hash at ``argument[member]`` (contest reasons, review notes)."""
    return lambda argument: argument.get(member)


def document_member(member: str) -> CommittedHash:
    """The hash at ``argument["document"][member]`` (a signed document, e.g. an access request)."""

    def read(argument: Mapping[str, Any]) -> object:
        document = argument.get("document")
        return document.get(member) if isinstance(document, Mapping) else None

    return read


def text_hooks(
    text: str | None,
    *,
    stores: StoreRegistry,
    sealing: Sealing | None,
    kind: str,
    member: str,
    committed: CommittedHash,
    readers: Readers | None = None,
    code: str = "note_hash_mismatch",
) -> tuple[BeforeEndorse, AfterEndorse]:
    """``(before, after)`` hooks for ``propose`` that check and keep ``text`` (if given).

    ``before`` refuses, before anything is endorsed, text whose SHA-256 is not
    ``committed(argument)`` (named ``member`` in the problem, with ``code``);
    ``after`` encrypts and stores it once the proposal is endorsed, sealed to
    the Audit custodian and to ``readers(pending)``. Without text both do
    nothing.
    """

    def before(proposal: Proposal, argument: dict[str, Any]) -> None:
        if text is not None:
            check_hash(text, committed(argument), member=member, tx_id=proposal.tx_id, code=code)

    def keep(pending: PendingTransaction, text: str, sealing: Sealing) -> None:
        holders = readers(pending) if readers is not None else ()
        try:
            store_note(
                stores, sealing, kind=kind, tx_id=pending.tx_id, text=text, readers=_unique(holders)
            )
        except StoreBusyError as exc:
            # Nothing is committed yet: the caller proposes again.
            raise GatewayError(
                f"the {NOTES_ORG} store is busy with another write; try again",
                code="store_busy",
                status=503,
                tx_id=pending.tx_id,
            ) from exc

    async def after(pending: PendingTransaction) -> None:
        if text is not None and sealing is not None:
            # Committed-state reads, sealing and SQLite writes: off the event loop.
            await asyncio.to_thread(keep, pending, text, sealing)

    return before, after


def _unique(holders: Sequence[KeyHolder]) -> list[KeyHolder]:
    seen: dict[tuple[str, str], KeyHolder] = {}
    for holder in holders:
        seen.setdefault((holder.msp_id, holder.cert_fingerprint), holder)
    return list(seen.values())


# -- who reads a note, besides the auditors ---------------------------------------------------


def request_subject_readers(queries: QueryService) -> Readers:
    """A break-glass justification: the citizens of the signed request's ``subject``."""

    def readers(pending: PendingTransaction) -> list[KeyHolder]:
        document = pending.argument.get("document")
        subject = document.get("subject") if isinstance(document, Mapping) else None
        return queries.subject_key_holders(subject) if isinstance(subject, str) else []

    return readers


def contesting_citizen_readers(queries: QueryService) -> Readers:
    """A contest reason: the contesting citizen, and the other credentials of their subject."""

    def readers(pending: PendingTransaction) -> list[KeyHolder]:
        own = queries.caller_key(pending.creator)
        holders = [own] if own is not None else []
        try:
            subject = queries.citizen_subject(pending.creator)
        except GatewayError:
            return holders  # the contract endorsed a bound citizen; nothing more to find
        return [*holders, *queries.subject_key_holders(subject)]

    return readers


def event_subject_readers(queries: QueryService) -> Readers:
    """A review note: the citizens of the subject of the committed event under review."""

    def readers(pending: PendingTransaction) -> list[KeyHolder]:
        event_id = pending.argument.get("event_id")
        subject = queries.event_subject(event_id) if isinstance(event_id, str) else None
        return queries.subject_key_holders(subject) if subject is not None else []

    return readers


# -- a citizen reads the notes about an access to their data ----------------------------------


class NoteView(Response):
    """One note about the event: its ciphertext and the key sealed to the caller."""

    kind: PublicKind
    tx_id: str = Field(pattern=_HEX64, description="The transaction that committed the note's hash")
    note_hash: str = Field(
        pattern=_HEX64, description="SHA-256 of the text, as the ledger holds it"
    )
    content_address: str = Field(pattern=_HEX64)
    ciphertext: str = Field(description="XChaCha20-Poly1305 ciphertext (base64)")
    sealed_key: str = Field(description="The note key sealed to the caller's X25519 key (base64)")
    recipient_public_key: str = Field(description="The X25519 public key it is sealed to (base64)")


class NoteList(Response):
    """The notes about one access event to the caller's data that the caller can open."""

    event_id: str
    subject: str
    notes: list[NoteView]
    withheld: int = Field(
        description="Notes stored for this event but not sealed to this credential"
    )


def ledger_notes(event: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(kind, tx_id, hash)`` of every note hash a committed access event holds."""
    found: list[tuple[str, str, str]] = []
    justification = event.get("request", {}).get("justification_hash")
    if isinstance(justification, str):
        found.append((JUSTIFICATION, str(event["tx_id"]), justification))
    review = event.get("review", {})
    for contest in review.get("contests", []):
        found.append((CONTEST_REASON, str(contest["contest_id"]), str(contest["reason_hash"])))
    for outcome in review.get("outcomes", []):
        found.append((REVIEW_NOTE, str(outcome["tx_id"]), str(outcome["note_hash"])))
    return found


async def subject_notes(
    queries: QueryService,
    stores: StoreRegistry,
    opener: NoteOpener | None,
    caller: Identity,
    event_id: str,
    *,
    now: datetime,
) -> NoteList:
    """The notes about access event ``event_id`` of the calling citizen, sealed to them.

    Who may ask is decided by :meth:`QueryService.my_access_event` (a bound
    citizen, about their own subject). Then: ``404 note_not_found`` when no
    text of the event's note hashes is stored, ``409
    encryption_key_not_registered`` when the caller has no X25519 key on the
    ledger. A note with no copy sealed to the caller's registered key is
    sealed to it now by ``opener`` (the Audit custodian), and logged before
    it leaves (``503 release_log_failed``, and nothing released, if the log
    cannot be written); without an opener (no Audit custodian here) it is
    withheld, and ``409 note_not_sealed_to_caller`` says so when that leaves
    nothing to show.
    """
    event = await queries.my_access_event(caller, event_id, now=now)
    return await asyncio.to_thread(_open_notes, queries, stores, opener, caller, event, now)


def _open_notes(
    queries: QueryService,
    stores: StoreRegistry,
    opener: NoteOpener | None,
    caller: Identity,
    event: Mapping[str, Any],
    now: datetime,
) -> NoteList:
    event_id = str(event["event_id"])
    if not stores.knows(NOTES_ORG):
        raise NotFound(f"no note is stored for access event {event_id}", code="note_not_found")
    store = stores.store(NOTES_ORG)
    snapshot = release_snapshot(queries.ledger, caller, str(event["event_id"]))
    # Keys are sealed on demand only for notes that state holds on the event, and only to a
    # credential that state binds to the event's subject.
    vouched: frozenset[tuple[str, str, str]] = frozenset()
    subject = event.get("subject")
    if subject is not None and snapshot.event.get("subject") == subject == snapshot.bound_subject:
        vouched = frozenset(ledger_notes(snapshot.event))
    # As for payload keys: no note key to a certificate the committed config revokes, even
    # before the gateway's membership view has caught up with that config block.
    require_channel_member(
        queries.ledger.channel_at(snapshot.height), caller.msp_id, caller.certificate, now=now
    )
    registered = snapshot.registered
    notes: list[NoteView] = []
    releases: list[dict[str, Any]] = []
    stored = 0
    for kind, tx_id, note_hash in ledger_notes(event):
        record_id = note_id(kind, tx_id)
        try:
            entry = store.get_tier_key(record_id=record_id, version=1, tier=NOTE_TIER)
        except (TierKeyNotFoundError, RecordErasedError):
            continue  # no text was given with the transaction, or it was erased
        stored += 1
        if registered is None:
            continue
        copy = next(
            (
                copy
                for copy in store.list_recipient_keys(record_id=record_id, msp_id=caller.msp_id)
                if copy.cert_fingerprint == registered.cert_fingerprint
                and copy.public_key == registered.public_key
            ),
            None,
        )
        if copy is not None:
            sealed = copy.sealed_key
        elif opener is not None and (kind, tx_id, note_hash) in vouched:
            # Bound, renewed or re-keyed since the note was stored: seal it to the key the
            # ledger registers for this credential now (the contract vouched for the caller).
            sealed = seal_key(opener.open_key(entry), registered.public_key)
            releases.append(
                note_release_entry(
                    event_id=event_id,
                    note_kind=PUBLIC_KINDS[kind],
                    note_tx_id=tx_id,
                    note_hash=note_hash,
                    note_record_id=record_id,
                    content_address=entry.address,
                    citizen_msp_id=registered.msp_id,
                    citizen_fingerprint=registered.cert_fingerprint,
                    recipient_public=registered.public_key,
                    released_at=now,
                    ledger_height=snapshot.height,
                )
            )
        else:
            continue
        notes.append(
            NoteView(
                kind=PUBLIC_KINDS[kind],
                tx_id=tx_id,
                note_hash=note_hash,
                content_address=entry.address,
                ciphertext=_b64(store.get_blob(entry.address)),
                sealed_key=_b64(sealed),
                recipient_public_key=_b64(registered.public_key),
            )
        )
    if stored == 0:
        raise NotFound(f"no note is stored for access event {event_id}", code="note_not_found")
    if registered is None:
        raise Conflict(
            "this credential has no X25519 key registered on the ledger, so no note"
            " key can be sealed to it; register one (RegisterEncryptionKey)",
            code="encryption_key_not_registered",
        )
    if not notes:
        raise Conflict(
            f"the {stored} note(s) of access event {event_id} are not sealed to this"
            " credential's registered key, and this gateway has no Audit custodian to seal them",
            code="note_not_sealed_to_caller",
        )
    if releases and opener is not None:  # only an opener releases
        append_before_release(opener.log, releases, custodian=NOTES_ORG)
    return NoteList(
        event_id=event_id, subject=str(event["subject"]), notes=notes, withheld=stored - len(notes)
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
