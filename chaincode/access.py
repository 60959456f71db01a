"""Access requests and the access log: RequestAccess and its queries.

``RequestAccess`` takes an officer's signed request (:mod:`chaincode.signed`)::

    {"format": "accessledger-access-request/1", "subject": "ps1:...",
     "record_types": ["social_insurance"] and/or "record_ids": ["rec-..."],
     "tier": "T1", "purpose": "school_enrolment", "case_ref": null,
     "emergency": false, "justification_hash": null,
     "nonce": "...", "timestamp": "2026-11-29T12:00:00Z"}

After the signature, window and nonce checks, every matching record is
evaluated in one Cedar batch against the anchored policy, each with its own
context (``has_consent`` depends on the record type). Exactly one access
event is written -- granted records with the tiers they release, denied ones
with the reason and determining policy ids, the policy version and bundle
hash, the emergency flag, the obligations -- and emitted as the chaincode
event ``AccessDecided``. An erased record (:mod:`chaincode.erasure`) is
matched like any other but not evaluated: it is denied with the reason
``record_erased`` and no determining policies. A denial is a normal, successful, committed result
(I3); only malformed, replayed, stale or forged requests are refused.

The event id is the transaction id. Events are indexed by subject, by
officer (MSP ID + certificate fingerprint) and by department and day, all
ordered by decision time.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from chaincode import authz
from chaincode.citizens import consent_covers, consents_of, require_own_subject
from chaincode.codec import (
    HEX_DIGEST,
    IDENTIFIER,
    ORG,
    SNAKE,
    Listing,
    boolean,
    check_fields,
    format_time,
    integer,
    optional_text,
    parse_time,
    string_list,
    subject,
    text,
)
from chaincode.context import Tx
from chaincode.erasure import RECORD_ERASED, is_erased
from chaincode.errors import Forbidden, InvalidArgument, NotFound
from chaincode.governance import AnchoredPolicy, anchored_policy
from chaincode.ledger import (
    ACCESS,
    DEPT_ACCESS,
    MARKER,
    OFFICER_ACCESS,
    RECORD,
    SUBJECT_ACCESS,
    SUBJECT_RECORD,
)
from chaincode.reviews import list_as_open, new_review
from chaincode.signed import ACCESS_REQUEST_FORMAT, SignedDocument, parse_signed, verify_signed
from policies.engine import REVIEW_REQUIRED
from policies.requests import ALL_DEPARTMENTS, AccessContext, Action, RecordResource
from policies.vocabulary import PURPOSES, TIERS, tiers_up_to

EVENT_FORMAT: Final = "accessledger-access-event/1"
#: Most records one request may name or match.
MAX_RECORDS: Final = 200
_MAX_LIST: Final = 1000
_MAX_DAYS: Final = 366
_CASE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]{0,127}$")
_REQUIRED: Final = {"format", "subject", "tier", "purpose", "nonce", "timestamp"}
_OPTIONAL: Final = {"record_types", "record_ids", "case_ref", "emergency", "justification_hash"}
_FINGERPRINT = HEX_DIGEST


def _check_request(document: dict[str, Any], record_types: frozenset[str]) -> None:
    check_fields(document, "request", _REQUIRED, _OPTIONAL)
    subject(document, what="request")
    if document["tier"] not in TIERS:
        raise InvalidArgument(f"request.tier must be one of {', '.join(TIERS)}")
    purpose = text(document, "purpose", SNAKE, what="request")
    if purpose not in PURPOSES:
        raise InvalidArgument(f"request.purpose {purpose!r} is not a known purpose")
    if "record_types" not in document and "record_ids" not in document:
        raise InvalidArgument("request names no record_types and no record_ids")
    if "record_types" in document:
        wanted = string_list(document, "record_types", SNAKE, what="request", max_items=20)
        unknown = sorted(set(wanted) - record_types)
        if unknown:
            raise InvalidArgument(f"request.record_types has unknown type(s) {', '.join(unknown)}")
    if "record_ids" in document:
        string_list(document, "record_ids", IDENTIFIER, what="request", max_items=MAX_RECORDS)
    if document.get("case_ref") not in (None, ""):
        text(document, "case_ref", _CASE_REF, what="request")
    emergency = boolean(document, "emergency", what="request")
    justification = optional_text(document, "justification_hash", HEX_DIGEST, what="request")
    if emergency and justification is None:
        raise InvalidArgument(
            "an emergency request needs justification_hash (the text itself stays off-chain)"
        )


async def _matching_records(
    tx: Tx, document: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Records the request covers (sorted by id) and requested ids that match nothing."""
    about = document["subject"]
    found: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for record_id in sorted(document.get("record_ids", [])):
        record = await tx.ledger.get_json(tx.ledger.key(RECORD, record_id))
        # A record about someone else is reported exactly like a missing one.
        if record is None or record["subject"] != about:
            missing.append(record_id)
        else:
            found[record_id] = record
    if "record_types" in document:
        wanted = set(document["record_types"])
        for parts, value in await tx.ledger.scan(SUBJECT_RECORD, [about]):
            record_id = parts[-1]
            if record_id in found or json.loads(value)["record_type"] not in wanted:
                continue
            if len(found) >= MAX_RECORDS:
                raise InvalidArgument(
                    f"the request matches more than {MAX_RECORDS} records; name record_ids"
                )
            record = await tx.ledger.get_json(tx.ledger.key(RECORD, record_id))
            if record is not None:
                found[record_id] = record
    return [found[k] for k in sorted(found)], missing


def _decide(
    tx: Tx,
    policy: AnchoredPolicy,
    caller_org: str,
    principal: Any,
    document: dict[str, Any],
    records: list[dict[str, Any]],
    consents: list[dict[str, Any]],
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    tier = document["tier"]
    purpose = document["purpose"]
    emergency = bool(document.get("emergency", False))
    action = Action.EMERGENCY_READ if emergency else Action.READ
    resources, contexts, consented = [], [], []
    for record in records:
        has_consent = any(
            consent_covers(
                c,
                org=caller_org,
                purpose=purpose,
                record_type=record["record_type"],
                tier=tier,
                now=tx.ledger.now,
            )
            for c in consents
        )
        consented.append(has_consent)
        resources.append(
            RecordResource(
                record["record_id"],
                record["owner_org"],
                record["record_type"],
                tier,
                record["region"],
            )
        )
        contexts.append(
            AccessContext(
                purpose=purpose,
                case_ref=document.get("case_ref"),
                has_consent=has_consent,
                emergency=emergency,
            )
        )
    # An erased record is matched (the event says the officer asked) but never evaluated:
    # its payload is gone, so no tier can be granted whatever the policy says.
    live = [i for i, record in enumerate(records) if not is_erased(record)]
    evaluated = policy.bundle.policy_set.evaluate_batch(
        principal, action, [resources[i] for i in live], [contexts[i] for i in live]
    )
    decisions = dict(zip(live, evaluated, strict=True))
    granted, denied = [], []
    for index, (record, has_consent) in enumerate(zip(records, consented, strict=True)):
        entry = {
            "record_id": record["record_id"],
            "record_type": record["record_type"],
            "owner_org": record["owner_org"],
            "region": record["region"],
            "version": record["version"],
            "tier": tier,
            "has_consent": has_consent,
        }
        decision = decisions.get(index)
        if decision is None:
            entry.update(policy_ids=[], reason=RECORD_ERASED, errors=[])
            denied.append(entry)
            continue
        entry["policy_ids"] = list(decision.determining_policy_ids)
        if decision.allowed:
            entry["tiers"] = [t for t in tiers_up_to(tier) if t in record["tiers"]]
            entry["obligations"] = list(decision.obligations)
            granted.append(entry)
        else:
            entry["reason"] = decision.reason
            entry["errors"] = list(decision.errors)
            denied.append(entry)
    return action.value, granted, denied


async def request_access(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Decide an officer's signed request and write one access event (granted or denied)."""
    signed: SignedDocument = parse_signed(arg, ACCESS_REQUEST_FORMAT)
    document = signed.document
    caller = await tx.caller()
    authz.require_requester(caller)
    principal = authz.officer_principal(caller)
    policy = await anchored_policy(tx)
    _check_request(document, frozenset(policy.bundle.catalogue.record_types()))
    await verify_signed(tx, caller, signed)

    records, missing = await _matching_records(tx, document)
    consents = await consents_of(tx, document["subject"]) if records else []
    action, granted, denied = _decide(
        tx, policy, caller.org, principal, document, records, consents
    )
    for record_id in missing:
        denied.append(
            {
                "record_id": record_id,
                "tier": document["tier"],
                "reason": "record_not_found",
                "policy_ids": [],
            }
        )
    obligations = sorted({o for entry in granted for o in entry["obligations"]})
    review_required = REVIEW_REQUIRED in obligations
    event_id = tx.ledger.tx_id
    event = {
        "format": EVENT_FORMAT,
        "event_id": event_id,
        "tx_id": tx.ledger.tx_id,
        "decided_at": tx.ledger.now_text,
        "officer": {
            **caller.ref(),
            "role": principal.role,
            "region": principal.region,
            "clearance": principal.clearance,
        },
        "subject": document["subject"],
        "action": action,
        "purpose": document["purpose"],
        "tier": document["tier"],
        "emergency": bool(document.get("emergency", False)),
        "request": document,
        "request_signature": signed.signature_b64(),
        "request_hash": signed.digest,
        "policy": policy.ref(),
        "decision": "granted" if granted and not denied else "partial" if granted else "denied",
        "granted": granted,
        "denied": denied,
        "obligations": obligations,
        "review": new_review(review_required),
    }
    if review_required:
        await list_as_open(tx, event_id)
    when, day = tx.ledger.now_text, tx.ledger.now_text[:10]
    await tx.ledger.put_json(tx.ledger.key(ACCESS, event_id), event)
    await tx.ledger.put(tx.ledger.key(SUBJECT_ACCESS, event["subject"], when, event_id), MARKER)
    await tx.ledger.put(
        tx.ledger.key(OFFICER_ACCESS, caller.msp_id, caller.fingerprint, when, event_id), MARKER
    )
    await tx.ledger.put(tx.ledger.key(DEPT_ACCESS, caller.org, day, when, event_id), MARKER)
    tx.ledger.set_event("AccessDecided", event)
    return event


# -- queries -----------------------------------------------------------------------


def _range(arg: dict[str, Any], *, required: bool) -> tuple[str | None, str | None]:
    bounds: list[str | None] = []
    for name in ("from", "to"):
        if arg.get(name) is None:
            if required:
                raise InvalidArgument(f"{name} is required (ISO 8601 UTC time)")
            bounds.append(None)
        else:
            bounds.append(format_time(parse_time(arg[name], what=name)))
    start, end = bounds
    if start is not None and end is not None and start >= end:
        raise InvalidArgument("from must be before to")
    return start, end


def _limit(arg: dict[str, Any]) -> int:
    return integer(arg, "limit", low=1, high=_MAX_LIST) if "limit" in arg else 100


@dataclass
class _Page:
    """Stored access events (their canonical JSON bytes, oldest first) and whether more follow."""

    events: list[bytes]
    truncated: bool


async def _events(
    tx: Tx,
    entries: AsyncGenerator[tuple[list[str], bytes], None],
    start: str | None,
    end: str | None,
    limit: int,
) -> _Page:
    """Read the events of index entries ``[..., time, event_id]`` within ``[start, end)``.

    Index entries sort by time, so the scan stops at the first entry at or
    after ``end``, or once it knows there is more than ``limit``: a page costs
    what it shows plus the entries before ``start``, however long the index.
    The events stay the bytes the contract stored; the answer splices them in
    (:class:`~chaincode.codec.Listing`).
    """
    page = _Page([], False)
    try:
        async for parts, _ in entries:
            when, event_id = parts[-2], parts[-1]
            if start is not None and when < start:
                continue
            if end is not None and when >= end:
                break
            if len(page.events) == limit:
                page.truncated = True
                break
            event = await tx.ledger.get(tx.ledger.key(ACCESS, event_id))
            if event is not None:
                page.events.append(event)
    finally:
        await entries.aclose()
    return page


async def list_access_by_subject(tx: Tx, arg: dict[str, Any]) -> Listing:
    """Access events about a subject: its own citizen, or whoever may read every log."""
    check_fields(arg, "ListAccessBySubject argument", {"subject"}, {"from", "to", "limit"})
    about = subject(arg)
    start, end = _range(arg, required=False)
    caller = await tx.caller()
    if authz.is_citizen(caller):
        if await require_own_subject(tx, caller) != about:
            raise Forbidden("a citizen may list only the accesses to their own data")
    else:
        policy = await anchored_policy(tx)
        authz.require_read_events(caller, ALL_DEPARTMENTS, policy.bundle.policy_set)
    entries = tx.ledger.entries(SUBJECT_ACCESS, [about])
    page = await _events(tx, entries, start, end, _limit(arg))
    return Listing({"subject": about, "truncated": page.truncated}, "events", page.events)


async def list_access_by_officer(tx: Tx, arg: dict[str, Any]) -> Listing:
    """One officer's access events: auditors, and admins of the officer's department."""
    check_fields(
        arg, "ListAccessByOfficer argument", {"msp_id", "cert_fingerprint"}, {"from", "to", "limit"}
    )
    msp_id = text(arg, "msp_id", ORG)
    fingerprint = text(arg, "cert_fingerprint", _FINGERPRINT)
    start, end = _range(arg, required=False)
    config = await tx.config()
    department = config.department_of_msp(msp_id)
    caller = await tx.caller()
    policy = await anchored_policy(tx)
    authz.require_read_events(caller, department.org, policy.bundle.policy_set)
    entries = tx.ledger.entries(OFFICER_ACCESS, [msp_id, fingerprint])
    page = await _events(tx, entries, start, end, _limit(arg))
    fields = {"msp_id": msp_id, "cert_fingerprint": fingerprint, "truncated": page.truncated}
    return Listing(fields, "events", page.events)


def _days(start: str, end: str) -> list[str]:
    first = parse_time(start, what="from").date()
    last = (parse_time(end, what="to") - timedelta(microseconds=1)).date()
    count = (last - first).days + 1
    if count > _MAX_DAYS:
        raise InvalidArgument(f"a department query spans at most {_MAX_DAYS} days")
    return [(first + timedelta(days=i)).isoformat() for i in range(count)]


async def list_access_by_department(tx: Tx, arg: dict[str, Any]) -> Listing:
    """A department's access events in ``[from, to)``: auditors and that department's admins."""
    check_fields(arg, "ListAccessByDepartment argument", {"org", "from", "to"}, {"limit"})
    org = text(arg, "org", ORG)
    start, end = _range(arg, required=True)
    if start is None or end is None:  # _range(required=True) never returns None
        raise InvalidArgument("from and to are required")
    days = _days(start, end)
    config = await tx.config()
    config.department(org)
    caller = await tx.caller()
    policy = await anchored_policy(tx)
    authz.require_read_events(caller, org, policy.bundle.policy_set)
    limit = _limit(arg)
    events: list[bytes] = []
    truncated = False
    for day in days:
        entries = tx.ledger.entries(DEPT_ACCESS, [org, day])
        page = await _events(tx, entries, start, end, limit - len(events))
        events.extend(page.events)
        if page.truncated:
            truncated = True
            break
    fields = {"org": org, "from": start, "to": end, "truncated": truncated}
    return Listing(fields, "events", events)


async def get_access_event(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """One event: for its officer, its subject's citizen, owner departments and log readers."""
    check_fields(arg, "GetAccessEvent argument", {"event_id"})
    event_id = text(arg, "event_id", IDENTIFIER)
    caller = await tx.caller()
    event = await tx.ledger.get_json(tx.ledger.key(ACCESS, event_id))
    if authz.is_citizen(caller):
        if event is None or await require_own_subject(tx, caller) != event["subject"]:
            raise NotFound(f"no access event {event_id} about this subject")
        return event
    if event is None:
        raise NotFound(f"no access event {event_id}")
    officer = event["officer"]
    if (officer["msp_id"], officer["cert_fingerprint"]) == (caller.msp_id, caller.fingerprint):
        return event
    owners = {e.get("owner_org") for e in [*event["granted"], *event["denied"]]}
    if caller.org in owners:
        return event
    policy = await anchored_policy(tx)
    authz.require_read_events(caller, officer["org"], policy.bundle.policy_set)
    return event
