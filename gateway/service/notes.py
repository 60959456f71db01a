"""Free text that may name people -- contest reasons, review notes -- kept off-chain, encrypted.

The ledger holds only the SHA-256 of such text (``reason_hash``,
``note_hash``). When a client hands the gateway the text itself, it must hash
to the value in the proposal's argument; the gateway then encrypts it under a
fresh key (associated data: the note's id, kind and tier T3), seals the key to
the Audit department's custodian and stores both in the Audit department's
store under the id ``<kind>-<tx_id>``. An auditor's custodian can open it; the
text never appears on the ledger or in logs (I1).
"""

from __future__ import annotations

import hashlib
from typing import Final

from crypto.envelope import (
    AssociatedData,
    content_address,
    encrypt_tier,
    generate_tier_key,
    seal_key,
)
from gateway.errors import GatewayError
from gateway.store import StoreRegistry

#: The department whose custodian and store keep contest reasons and review notes.
NOTES_ORG: Final = "Audit"
NOTE_TIER: Final = "T3"


def note_id(kind: str, tx_id: str) -> str:
    """The store record id of the note of transaction ``tx_id``."""
    return f"{kind}-{tx_id}"


def check_hash(text: str, expected: object, *, member: str, tx_id: str) -> None:
    """Refuse text whose SHA-256 is not the hash the proposal commits to."""
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != expected:
        raise GatewayError(
            f"SHA-256 of the text is not the proposal's {member}",
            code="note_hash_mismatch",
            status=422,
            tx_id=tx_id,
        )


def store_note(
    stores: StoreRegistry, custodian_public: bytes, *, kind: str, tx_id: str, text: str
) -> str:
    """Encrypt and store ``text``; return its content address."""
    record_id = note_id(kind, tx_id)
    key = generate_tier_key()
    ciphertext = encrypt_tier(
        key, text.encode("utf-8"), AssociatedData(record_id, 1, kind, NOTE_TIER)
    )
    store = stores.store(NOTES_ORG)
    address = store.put_blob(ciphertext, address=content_address(ciphertext))
    store.put_tier_key(
        record_id=record_id,
        version=1,
        tier=NOTE_TIER,
        sealed_key=seal_key(key, custodian_public),
        address=address,
        size=len(ciphertext),
    )
    return address
