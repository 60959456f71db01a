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

:func:`text_hooks` is the one way a route does this: it returns the
before-endorsement check and the after-endorsement store for
:meth:`~gateway.service.core.GatewayService.propose`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from crypto.envelope import (
    AssociatedData,
    content_address,
    encrypt_tier,
    generate_tier_key,
    seal_key,
)
from gateway.custodian_keys import Sealing
from gateway.errors import GatewayError
from gateway.store import StoreRegistry

if TYPE_CHECKING:
    from gateway.service.core import AfterEndorse, BeforeEndorse
    from gateway.service.transactions import PendingTransaction
    from network.engine.proposal import Proposal

#: The department whose custodian and store keep the off-chain free text.
NOTES_ORG: Final = "Audit"
NOTE_TIER: Final = "T3"

#: Note kinds (the prefix of the store record id, and the record type in the associated data).
CONTEST_REASON: Final = "contest_reason"
REVIEW_NOTE: Final = "review_note"
JUSTIFICATION: Final = "break_glass_justification"

#: Reads the hash a proposal's argument commits to.
CommittedHash = Callable[[Mapping[str, Any]], object]


def note_id(kind: str, tx_id: str) -> str:
    """The store record id of the note of transaction ``tx_id``."""
    return f"{kind}-{tx_id}"


def text_sha256(text: str) -> str:
    """Lowercase hex SHA-256 of ``text`` (UTF-8), as the ledger refers to it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_hash(
    text: str, expected: object, *, member: str, tx_id: str, code: str = "note_hash_mismatch"
) -> None:
    """Refuse text whose SHA-256 is not the hash the proposal commits to (``422 code``)."""
    if text_sha256(text) != expected:
        raise GatewayError(
            f"SHA-256 of the text is not the proposal's {member}",
            code=code,
            status=422,
            tx_id=tx_id,
        )


def store_note(stores: StoreRegistry, sealing: Sealing, *, kind: str, tx_id: str, text: str) -> str:
    """Encrypt and store ``text``; return its content address."""
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
    code: str = "note_hash_mismatch",
) -> tuple[BeforeEndorse, AfterEndorse]:
    """``(before, after)`` hooks for ``propose`` that check and keep ``text`` (if given).

    ``before`` refuses, before anything is endorsed, text whose SHA-256 is not
    ``committed(argument)`` (named ``member`` in the problem, with ``code``);
    ``after`` encrypts and stores it once the proposal is endorsed. Without
    text both do nothing.
    """

    def before(proposal: Proposal, argument: dict[str, Any]) -> None:
        if text is not None:
            check_hash(text, committed(argument), member=member, tx_id=proposal.tx_id, code=code)

    async def after(pending: PendingTransaction) -> None:
        if text is not None and sealing is not None:
            store_note(stores, sealing, kind=kind, tx_id=pending.tx_id, text=text)

    return before, after
