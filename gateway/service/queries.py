"""Read-only views for citizens and auditors, evaluated by the chaincode as the caller.

Every view here is a chaincode query run with the authenticated caller as
creator (``LedgerClient.query``), so the contract's authorisation applies:
a citizen sees only accesses to their own data, an auditor every
department's log, a department admin its own department's. The gateway adds
paging and presentation, never permissions. The one decision taken outside a
chaincode function -- who may stream raw blocks -- is the anchored Cedar
policy's ``read_events`` on every department, asked through the contract's
own :func:`chaincode.authz.may_read_events`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from chaincode import LedgerConfig
from chaincode.authz import may_read_events
from chaincode.caller import certificate_fingerprint, identify
from chaincode.codec import format_time
from chaincode.ledger import CITIZEN, CONFIG_KEY
from crypto.errors import AccessLedgerError
from crypto.identity import Identity
from gateway.errors import Forbidden, GatewayError, RequestInvalid
from gateway.schemas import (
    AccessesPage,
    AccessView,
    OfficerView,
    PolicyRef,
    RecordAccessView,
    ReviewView,
)
from gateway.service.ledger import LedgerClient
from gateway.service.policy import PolicyCache
from policies.requests import ALL_DEPARTMENTS

_FETCH_MAX: Final = 1000
_FETCH_MIN: Final = 20
_PAGES_MAX: Final = 20


def parse_moment(value: str | None, name: str) -> str | None:
    """An RFC 3339 query parameter as the ledger's time format, or 422."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestInvalid(f"{name} must be an RFC 3339 time like 2026-01-31T08:00:00Z") from None
    if moment.tzinfo is None:
        raise RequestInvalid(f"{name} must carry a time zone (e.g. Z)")
    return format_time(moment.astimezone(UTC))


def _cursor(encoded: str | None) -> tuple[str, str] | None:
    if encoded is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii") + b"=="))
        return str(data["t"]), str(data["e"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise RequestInvalid("cursor is not one this gateway issued") from None


def _next_cursor(event: Mapping[str, Any]) -> str:
    raw = json.dumps({"t": event["decided_at"], "e": event["event_id"]}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def access_view(event: Mapping[str, Any]) -> AccessView:
    """How a citizen sees one access event (no request signature, no internal details)."""
    officer = event["officer"]
    records = [
        RecordAccessView(
            record_id=g["record_id"],
            record_type=g.get("record_type"),
            owner_org=g.get("owner_org"),
            granted=True,
            tiers=list(g.get("tiers", [])),
        )
        for g in event.get("granted", [])
    ] + [
        RecordAccessView(
            record_id=d["record_id"],
            record_type=d.get("record_type"),
            owner_org=d.get("owner_org"),
            granted=False,
            reason=d.get("reason"),
        )
        for d in event.get("denied", [])
    ]
    review = event.get("review", {})
    policy = event["policy"]
    return AccessView(
        event_id=event["event_id"],
        decided_at=event["decided_at"],
        officer=OfficerView(
            org=officer["org"],
            msp_id=officer["msp_id"],
            name=officer["name"],
            role=officer.get("role"),
            cert_fingerprint=officer["cert_fingerprint"],
        ),
        purpose=event["purpose"],
        case_ref=event.get("request", {}).get("case_ref"),
        tier=event["tier"],
        emergency=bool(event.get("emergency", False)),
        decision=event["decision"],
        policy=PolicyRef(version=int(policy["version"]), bundle_hash=policy["bundle_hash"]),
        records=records,
        review=ReviewView(
            status=str(review.get("status", "none")),
            reasons=list(review.get("reasons", [])),
            contests=len(review.get("contests", [])),
        ),
    )


class QueryService:
    """Citizens' and auditors' views (see the module docstring)."""

    def __init__(self, ledger: LedgerClient, policy: PolicyCache) -> None:
        self.ledger = ledger
        self.policy = policy

    def citizen_subject(self, caller: Identity) -> str:
        """The pseudonym the caller's citizen credential is bound to on the ledger."""
        binding = self.ledger.state_json(
            CITIZEN, caller.msp_id, certificate_fingerprint(caller.certificate)
        )
        if binding is None:
            raise Forbidden(
                "this credential is not bound to a subject on the ledger (RegisterCitizen)",
                code="citizen_not_registered",
            )
        return str(binding["subject"])

    async def my_accesses(
        self,
        caller: Identity,
        *,
        now: datetime,
        start: str | None,
        end: str | None,
        department: str | None,
        limit: int,
        cursor: str | None,
    ) -> AccessesPage:
        """One page of the access events about the caller's own subject, oldest first."""
        subject = self.citizen_subject(caller)
        after = _cursor(cursor)
        since = max(start, after[0]) if (start and after) else (after[0] if after else start)
        found: list[Mapping[str, Any]] = []
        more = False
        # Fetch about a page (the chaincode encodes every event it returns, so asking for
        # a thousand to show twenty dominated a busy subject's request); a department
        # filter discards most events, so it starts large. Each further fetch doubles.
        fetch = _FETCH_MAX if department is not None else max(limit + 1, _FETCH_MIN)
        for _ in range(_PAGES_MAX):
            arg: dict[str, Any] = {"subject": subject, "limit": fetch}
            if since is not None:
                arg["from"] = since
            if end is not None:
                arg["to"] = end
            page = await self.ledger.query(caller, "ListAccessBySubject", arg, now=now)
            events = page.get("events", [])
            for event in events:
                key = (event["decided_at"], event["event_id"])
                if after is not None and key <= after:
                    continue
                after = key
                if department is not None and event["officer"]["org"] != department:
                    continue
                found.append(event)
            if len(found) > limit or not page.get("truncated") or not events:
                more = len(found) > limit or bool(page.get("truncated") and events)
                break
            since = events[-1]["decided_at"]
            fetch = min(_FETCH_MAX, fetch * 2)
        else:
            more = True
        shown = found[:limit]
        return AccessesPage(
            subject=subject,
            accesses=[access_view(e) for e in shown],
            next_cursor=_next_cursor(shown[-1]) if more and shown else None,
        )

    async def my_consents(self, caller: Identity, *, now: datetime) -> dict[str, Any]:
        subject = self.citizen_subject(caller)
        return await self.ledger.query(caller, "ListConsents", {"subject": subject}, now=now)

    async def audit_events(
        self,
        caller: Identity,
        *,
        now: datetime,
        department: str | None,
        officer_msp: str | None,
        officer_fingerprint: str | None,
        subject: str | None,
        open_review: bool,
        start: str | None,
        end: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """Access events by exactly one selector (department, officer, subject, open review)."""
        selectors = [
            department is not None,
            officer_msp is not None or officer_fingerprint is not None,
            subject is not None,
            open_review,
        ]
        if sum(selectors) != 1:
            raise RequestInvalid(
                "give exactly one selector: department, officer_msp + officer_fingerprint,"
                " subject or open_review=true"
            )
        span = {k: v for k, v in (("from", start), ("to", end)) if v is not None}
        if department is not None:
            arg: dict[str, Any] = {"org": department, **span, "limit": limit}
            function = "ListAccessByDepartment"
        elif subject is not None:
            arg, function = {"subject": subject, **span, "limit": limit}, "ListAccessBySubject"
        elif open_review:
            arg, function = {"limit": limit}, "ListOpenReviews"
        else:
            if officer_msp is None or officer_fingerprint is None:
                raise RequestInvalid("officer_msp and officer_fingerprint go together")
            arg = {
                "msp_id": officer_msp,
                "cert_fingerprint": officer_fingerprint,
                **span,
                "limit": limit,
            }
            function = "ListAccessByOfficer"
        result = await self.ledger.query(caller, function, arg, now=now)
        return {"events": result.get("events", []), "truncated": bool(result.get("truncated"))}

    def require_ledger_reader(self, caller: Identity, *, now: datetime) -> None:
        """Refuse unless the anchored policy lets the caller read every department's log."""
        data = self.ledger.state(CONFIG_KEY)
        if data is None:
            raise GatewayError(
                "the ledger is not initialised", code="ledger_not_initialised", status=503
            )
        try:
            config = LedgerConfig.from_dict(json.loads(data))
            chaincode_caller = identify(config, caller.msp_id, caller.cert_pem(), now=now)
        except AccessLedgerError as exc:
            raise Forbidden("the caller is not an identity of a department of this ledger") from exc
        if not may_read_events(
            chaincode_caller, ALL_DEPARTMENTS, self.policy.current().bundle.policy_set
        ):
            raise Forbidden(
                "the anchored policy does not let the caller read every department's access"
                " log, which the raw ledger contains"
            )
