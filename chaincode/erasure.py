"""Erasure: EraseRecord, the ledger half of crypto-shredding (PIPL Art. 44-47).

A record is erased by destroying its tier keys and ciphertexts in the owning
department's off-chain store. The ledger never held the payload, so it keeps
everything it has -- every version's hashes and sizes, the whole access
history -- and records *that* the record was erased, by whom and when::

    erasure <record_id>  {"format": "accessledger-erasure/1", "record_id", "record_type",
                          "owner_org", "subject", "version", "erased_at", "erased_by",
                          "tx_id", "reason_hash"}

The same document is set on the current record under ``erased`` and emitted
as the chaincode event ``RecordErased``; ``record_version`` entries (the
history) are left exactly as they were committed. The gateway shreds the
store copy once the transaction commits VALID, and :func:`chaincode.access.request_access`
grants no tier of an erased record (denied with reason ``record_erased``).

Only a registrar or admin of the owning department may erase
(:func:`chaincode.authz.require_eraser`). A reason may be given only as its
SHA-256 (``reason_hash``): free text could name people (I1).
"""

from __future__ import annotations

from typing import Any, Final

from chaincode import authz
from chaincode.codec import HEX_DIGEST, IDENTIFIER, check_fields, optional_text, text
from chaincode.context import Tx
from chaincode.errors import Conflict, NotFound
from chaincode.ledger import ERASURE, RECORD

ERASURE_FORMAT: Final = "accessledger-erasure/1"
#: The denial reason of an erased record in an access event.
RECORD_ERASED: Final = "record_erased"


def is_erased(record: dict[str, Any]) -> bool:
    """Whether a record (as stored under ``record``) was erased."""
    return isinstance(record.get("erased"), dict)


async def erase_record(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Mark a record erased on the ledger (the store copy is shredded after commit)."""
    check_fields(arg, "EraseRecord argument", {"record_id"}, {"reason_hash"})
    record_id = text(arg, "record_id", IDENTIFIER, what="EraseRecord argument")
    reason_hash = optional_text(arg, "reason_hash", HEX_DIGEST, what="EraseRecord argument")
    caller = await tx.caller()
    key = tx.ledger.key(RECORD, record_id)
    record = await tx.ledger.get_json(key)
    if record is None:
        raise NotFound(f"record {record_id} does not exist", code="record_not_found")
    authz.require_eraser(caller, str(record["owner_org"]), record_id)
    if is_erased(record):
        raise Conflict(f"record {record_id} is already erased", code=RECORD_ERASED)
    erasure = {
        "format": ERASURE_FORMAT,
        "record_id": record_id,
        "record_type": record["record_type"],
        "owner_org": record["owner_org"],
        "subject": record["subject"],
        "version": record["version"],
        "erased_at": tx.ledger.now_text,
        "erased_by": caller.ref(),
        "tx_id": tx.ledger.tx_id,
        "reason_hash": reason_hash,
    }
    await tx.ledger.put_json(key, {**record, "erased": erasure})
    await tx.ledger.put_json(tx.ledger.key(ERASURE, record_id), erasure)
    tx.ledger.set_event("RecordErased", erasure)
    return erasure
