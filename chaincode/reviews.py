"""Reviews of access events: ReviewAccess and ListOpenReviews.

Every access event carries a ``review`` object::

    {"required": bool,            # break-glass: a policy obligation review_required
     "status": "none" | "open" | "closed",
     "reasons": ["review_required", "contested", ...],
     "contests": [{contest_id, reason_hash, by, at}, ...],
     "outcomes": [{outcome, note_hash, by, at, tx_id}, ...]}

A break-glass grant opens the review when the event is written; a citizen's
contest opens (or re-opens) it. While open, the event is listed under the
``open_review`` index. An auditor of the Audit department closes it with
``ReviewAccess``: an outcome and the hash of a note (the note itself is kept
off-chain). The decision part of an event never changes; only its review
does, and the ledger's key history keeps every state it went through.
"""

from __future__ import annotations

import json
from typing import Any, Final

from chaincode import authz
from chaincode.codec import HEX_DIGEST, IDENTIFIER, check_fields, integer, text
from chaincode.context import Tx
from chaincode.errors import Conflict, InvalidArgument, NotFound
from chaincode.ledger import ACCESS, MARKER, OPEN_REVIEW

#: What an auditor may conclude about a reviewed access.
OUTCOMES: Final = ("justified", "unjustified", "referred")
_MAX_LIST: Final = 1000


def new_review(required: bool) -> dict[str, Any]:
    """The review object of a fresh access event (open when ``required``)."""
    return {
        "required": required,
        "status": "open" if required else "none",
        "reasons": ["review_required"] if required else [],
        "contests": [],
        "outcomes": [],
    }


async def list_as_open(tx: Tx, event_id: str) -> None:
    """Add the event to the ``open_review`` index auditors work through."""
    await tx.ledger.put(tx.ledger.key(OPEN_REVIEW, event_id), MARKER)


async def open_review(tx: Tx, event: dict[str, Any], reason: str) -> None:
    """Mark ``event``'s review open for ``reason`` (the caller writes the event back)."""
    review = event["review"]
    if reason not in review["reasons"]:
        review["reasons"].append(reason)
    review["status"] = "open"
    await list_as_open(tx, event["event_id"])


async def review_access(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """An auditor closes an open review with an outcome and a note hash."""
    check_fields(arg, "ReviewAccess argument", {"event_id", "outcome", "note_hash"})
    event_id = text(arg, "event_id", IDENTIFIER)
    outcome = text(arg, "outcome")
    note_hash = text(arg, "note_hash", HEX_DIGEST)
    if outcome not in OUTCOMES:
        raise InvalidArgument(f"outcome must be one of {', '.join(OUTCOMES)}")
    caller = await tx.caller()
    authz.require_auditor(caller)
    key = tx.ledger.key(ACCESS, event_id)
    event = await tx.ledger.get_json(key)
    if event is None:
        raise NotFound(f"no access event {event_id}")
    review = event["review"]
    if review["status"] != "open":
        raise Conflict(f"access event {event_id} has no open review", code="review_not_open")
    entry = {
        "outcome": outcome,
        "note_hash": note_hash,
        "reasons": list(review["reasons"]),
        "by": caller.ref(),
        "at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
    }
    review["outcomes"].append(entry)
    review["status"] = "closed"
    await tx.ledger.put_json(key, event)
    await tx.ledger.delete(tx.ledger.key(OPEN_REVIEW, event_id))
    tx.ledger.set_event("AccessReviewed", {"event_id": event_id, **entry})
    return {"event_id": event_id, "review": review}


async def list_open_reviews(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Access events waiting for review, oldest id first (auditors only)."""
    check_fields(arg, "ListOpenReviews argument", set(), {"limit"})
    limit = integer(arg, "limit", low=1, high=_MAX_LIST) if "limit" in arg else 100
    caller = await tx.caller()
    authz.require_auditor(caller)
    events: list[dict[str, Any]] = []
    entries = await tx.ledger.scan(OPEN_REVIEW, limit=limit + 1)
    for parts, _ in entries[:limit]:
        value = await tx.ledger.get(tx.ledger.key(ACCESS, parts[0]))
        if value is not None:
            events.append(json.loads(value))
    return {"events": events, "truncated": len(entries) > limit}
