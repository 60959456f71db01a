"""Read-only views for citizens and auditors, evaluated by the chaincode as the caller.

Every view here is a chaincode query run with the authenticated caller as
creator (``LedgerClient.query``), so the contract's authorisation applies:
a citizen sees only accesses to their own data, an auditor every
department's log, a department admin its own department's. The gateway adds
paging and presentation, never permissions. The one decision taken outside a
chaincode function -- who may stream raw blocks -- is the anchored Cedar
policy's ``read_events`` on every department, asked through the contract's
own :func:`chaincode.authz.may_read_events`.

Notes (off-chain free text) are sealed to the subject's citizens too, so
the gateway must find, from committed state alone, the credentials bound to
a pseudonym. ``RegisterCitizen`` writes the index ``subject_citizen <subject>
<msp_id> <fingerprint>`` beside the binding, and ``InitLedger`` marks the
index complete (``citizen_index``); :meth:`QueryService.subject_credentials`
then reads one short range. A ledger initialised before the index existed
lacks the mark and may hold unindexed bindings: there the gateway falls back
to scanning the ``citizen`` range read-only, in pages, stopping after
:data:`CITIZEN_SCAN_LIMIT` bindings (and logging it).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from chaincode import LedgerConfig
from chaincode.authz import may_read_events
from chaincode.caller import certificate_fingerprint, identify
from chaincode.codec import format_time, parse_time
from chaincode.ledger import (
    ACCESS,
    CITIZEN,
    CITIZEN_INDEX_KEY,
    CONFIG_KEY,
    ENC_KEY,
    SUBJECT_CITIZEN,
)
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
from gateway.service.ledger import LedgerClient, composite_key, split_composite_key
from gateway.service.policy import PolicyCache
from policies.requests import ALL_DEPARTMENTS

_FETCH_MAX: Final = 1000
_FETCH_MIN: Final = 20
_PAGES_MAX: Final = 20
#: How many citizen bindings a subject's key look-up reads at most (module docstring).
CITIZEN_SCAN_LIMIT: Final = 200_000
_SCAN_PAGE: Final = 1000
#: The highest code point: the end of a composite-key prefix range, as Fabric's shim uses.
_MAX_RUNE: Final = "\U0010ffff"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyHolder:
    """An identity with an X25519 key registered on the ledger (``RegisterEncryptionKey``)."""

    msp_id: str
    cert_fingerprint: str
    public_key: bytes


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
    try:
        # 0001-01-01T00:00:00+23:59 is a valid RFC 3339 time whose UTC instant is before year 1.
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise RequestInvalid(
            f"{name} is outside the range of RFC 3339 times the ledger holds"
            " (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
        ) from None
    return format_time(utc)


def _issued_time(value: object) -> bool:
    """Whether ``value`` is a time exactly as the ledger writes it (what cursors carry)."""
    if not isinstance(value, str):
        return False
    try:
        return format_time(parse_time(value, what="cursor")) == value
    except (AccessLedgerError, ValueError, OverflowError):
        return False


def _cursor(encoded: str | None) -> tuple[str, str] | None:
    """The ``(decided_at, event_id)`` a cursor of :func:`_next_cursor` carries, or 422.

    A cursor decodes to exactly what the gateway put in it, or is refused as
    foreign: its time is handed to the contract as ``from``, and a malformed
    one would come back as a complaint about a ``from`` the caller never sent.
    """
    if encoded is None:
        return None
    foreign = RequestInvalid("cursor is not one this gateway issued")
    try:
        data = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii") + b"=="))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise foreign from None
    if not isinstance(data, dict) or set(data) != {"t", "e"}:
        raise foreign
    moment, event_id = data["t"], data["e"]
    if not _issued_time(moment) or not isinstance(event_id, str) or not event_id:
        raise foreign
    return moment, event_id


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

    def encryption_key(self, msp_id: str, cert_fingerprint: str) -> KeyHolder | None:
        """The X25519 key committed for one identity, or ``None`` if it registered none."""
        entry = self.ledger.state_json(ENC_KEY, msp_id, cert_fingerprint)
        if entry is None:
            return None
        try:
            public_key = base64.b64decode(str(entry["public_key"]), validate=True)
        except (KeyError, ValueError, binascii.Error):
            logger.warning("the registered key of %s/%s is unreadable", msp_id, cert_fingerprint)
            return None
        return KeyHolder(msp_id, cert_fingerprint, public_key)

    def caller_key(self, caller: Identity) -> KeyHolder | None:
        """The caller's committed X25519 key, or ``None``."""
        return self.encryption_key(caller.msp_id, certificate_fingerprint(caller.certificate))

    def subject_credentials(self, subject: str) -> list[tuple[str, str]]:
        """``(msp_id, fingerprint)`` of every citizen credential committed as bound to ``subject``.

        From the subject index, or on a ledger that predates it a bounded scan
        of every binding (module docstring).
        """
        store, namespace = self.ledger.network.store, self.ledger.chaincode
        with store.snapshot() as view:
            if view.get_state(namespace, CITIZEN_INDEX_KEY) is not None:
                prefix = composite_key(SUBJECT_CITIZEN, subject)
                rows = view.get_state_range(namespace, prefix, prefix + _MAX_RUNE)
                found = []
                for row in rows:
                    *_, msp_id, fingerprint = split_composite_key(row.key)
                    # The binding itself, in the same snapshot, must name this subject: an
                    # index entry alone never makes a credential a reader.
                    binding = view.get_state(namespace, composite_key(CITIZEN, msp_id, fingerprint))
                    if binding is not None and json.loads(binding.value).get("subject") == subject:
                        found.append((msp_id, fingerprint))
                return found
        return self._scan_bindings(subject)

    def _scan_bindings(self, subject: str) -> list[tuple[str, str]]:
        """The credentials bound to ``subject`` by reading every binding (unindexed ledgers)."""
        prefix = composite_key(CITIZEN)
        start, end = prefix, prefix + _MAX_RUNE
        found: list[tuple[str, str]] = []
        scanned = 0
        store, namespace = self.ledger.network.store, self.ledger.chaincode
        logger.info("this ledger has no subject index of citizen credentials; scanning bindings")
        while True:
            want = min(_SCAN_PAGE, CITIZEN_SCAN_LIMIT - scanned)
            with store.snapshot() as view:
                page = view.get_state_range(namespace, start, end, limit=want + 1)
            for row in page[:want]:
                binding = json.loads(row.value)
                if isinstance(binding, dict) and binding.get("subject") == subject:
                    found.append((str(binding["msp_id"]), str(binding["cert_fingerprint"])))
            if len(page) <= want:
                return found
            scanned += want
            if scanned >= CITIZEN_SCAN_LIMIT:
                break
            start = page[want].key
        logger.warning(
            "stopped looking for the credentials of a subject after %d citizen bindings;"
            " notes are sealed only to those found",
            CITIZEN_SCAN_LIMIT,
        )
        return found

    def subject_key_holders(self, subject: str) -> list[KeyHolder]:
        """The committed X25519 keys of the citizen credentials bound to ``subject``."""
        holders = (self.encryption_key(msp, fp) for msp, fp in self.subject_credentials(subject))
        return [holder for holder in holders if holder is not None]

    def event_subject(self, event_id: str) -> str | None:
        """The subject pseudonym of a committed access event, or ``None``."""
        event = self.ledger.state_json(ACCESS, event_id)
        return None if event is None else str(event["subject"])

    async def my_access_event(
        self, caller: Identity, event_id: str, *, now: datetime
    ) -> dict[str, Any]:
        """One access event about the calling citizen's own subject.

        Refuses a caller that is not a bound citizen (``403
        citizen_not_registered``); the chaincode's ``GetAccessEvent``, run as
        the caller, answers ``404`` alike for an event that does not exist and
        one about somebody else.
        """
        subject = self.citizen_subject(caller)
        event = await self.ledger.query(caller, "GetAccessEvent", {"event_id": event_id}, now=now)
        if event.get("subject") != subject:
            # The contract already refused this; never serve another subject's event anyway.
            raise GatewayError(
                f"no access event {event_id} about this subject", code="not_found", status=404
            )
        return event

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
        """Access events by exactly one selector (department, officer, subject, open review).

        A department's events also need both ``from`` and ``to`` (``422
        request_invalid`` otherwise, before the contract is asked).
        """
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
        if department is not None and len(span) != 2:
            # The contract reads a department's log day by day, so it needs both bounds.
            raise RequestInvalid("a department's access events need from and to")
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
