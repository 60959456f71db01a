"""A typed model of AccessLedger's access events, parsed from ledger state or chaincode events.

The chaincode writes one access event per ``RequestAccess`` transaction,
under the composite key ``access/<event_id>``, as canonical JSON with the
format tag ``accessledger-access-event/1`` (docs/chaincode.md); the same
document is the payload of the ``AccessDecided`` chaincode event. Reviews
and contests later rewrite the event with an updated ``review`` member; the
decision part never changes.

Audit depends on the *format*, not on the chaincode package: this module is
the auditor's own reading of it, strict enough that a malformed event is a
finding rather than a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

EVENT_FORMAT: Final = "accessledger-access-event/1"
#: Decisions an event can record.
DECISIONS: Final = ("granted", "partial", "denied")


class EventFormatError(ValueError):
    """An access event does not have the documented shape; the message says where."""


def parse_ledger_time(text: Any, what: str) -> datetime:
    """A ledger time (``2026-11-29T12:00:00.000000Z``) as an aware UTC datetime."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise EventFormatError(f"{what} must be an ISO 8601 UTC time ending in Z")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise EventFormatError(f"{what} is not an ISO 8601 time: {text!r}") from None


def _get(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EventFormatError(f"{where}.{name} is missing or has the wrong type")
    return value


def _strings(values: Any, where: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise EventFormatError(f"{where} must be a list of strings")
    return tuple(values)


@dataclass(frozen=True)
class Officer:
    """Who asked: the creator's identity and the Cedar attributes it was judged with."""

    msp_id: str
    org: str
    cert_fingerprint: str
    name: str
    role: str
    region: str
    clearance: int

    @property
    def key(self) -> str:
        """``MSPID:fingerprint``: how the ledger (and Cedar) names the officer."""
        return f"{self.msp_id}:{self.cert_fingerprint}"

    @classmethod
    def from_dict(cls, data: Any) -> Officer:
        if not isinstance(data, Mapping):
            raise EventFormatError("event.officer must be an object")
        w = "event.officer"
        return cls(
            msp_id=_get(data, "msp_id", str, w),
            org=_get(data, "org", str, w),
            cert_fingerprint=_get(data, "cert_fingerprint", str, w),
            name=str(data.get("name", "")),
            role=_get(data, "role", str, w),
            region=_get(data, "region", str, w),
            clearance=_get(data, "clearance", int, w),
        )


@dataclass(frozen=True)
class RecordDecision:
    """The decision on one record of a request.

    ``record_type`` and the other record facts are ``None`` for a requested
    id that matched no record (``reason == "record_not_found"``).
    """

    record_id: str
    granted: bool
    tier: str
    record_type: str | None
    owner_org: str | None
    region: str | None
    version: int | None
    has_consent: bool
    policy_ids: tuple[str, ...]
    tiers: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()
    reason: str | None = None
    errors: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.record_type is not None

    @classmethod
    def from_dict(cls, data: Any, *, granted: bool, where: str) -> RecordDecision:
        if not isinstance(data, Mapping):
            raise EventFormatError(f"{where} must be an object")
        found = "record_type" in data
        version = data.get("version")
        if found and (not isinstance(version, int) or isinstance(version, bool)):
            raise EventFormatError(f"{where}.version must be an integer")
        return cls(
            record_id=_get(data, "record_id", str, where),
            granted=granted,
            tier=_get(data, "tier", str, where),
            record_type=_get(data, "record_type", str, where) if found else None,
            owner_org=_get(data, "owner_org", str, where) if found else None,
            region=_get(data, "region", str, where) if found else None,
            version=version if found else None,
            has_consent=bool(data.get("has_consent", False)),
            policy_ids=_strings(data.get("policy_ids", []), f"{where}.policy_ids"),
            tiers=_strings(data.get("tiers", []), f"{where}.tiers") if granted else (),
            obligations=_strings(data.get("obligations", []), f"{where}.obligations"),
            reason=None if granted else _get(data, "reason", str, where),
            errors=_strings(data.get("errors", []), f"{where}.errors"),
        )


@dataclass(frozen=True)
class Review:
    """The review part of an event: break-glass obligation, contests, auditors' outcomes."""

    required: bool
    status: str
    reasons: tuple[str, ...]
    contests: tuple[Mapping[str, Any], ...]
    outcomes: tuple[Mapping[str, Any], ...]

    @property
    def contested(self) -> bool:
        return bool(self.contests)

    def closed_at(self) -> datetime | None:
        """When an auditor last closed the review (``None`` if never)."""
        times = []
        for outcome in self.outcomes:
            try:
                times.append(parse_ledger_time(outcome.get("at"), "review.outcomes.at"))
            except EventFormatError:
                continue
        return max(times) if times else None

    @classmethod
    def from_dict(cls, data: Any) -> Review:
        if not isinstance(data, Mapping):
            raise EventFormatError("event.review must be an object")
        contests = data.get("contests", [])
        outcomes = data.get("outcomes", [])
        if not isinstance(contests, list) or not isinstance(outcomes, list):
            raise EventFormatError("event.review contests and outcomes must be lists")
        if not all(isinstance(c, Mapping) for c in [*contests, *outcomes]):
            raise EventFormatError("event.review contests and outcomes must hold objects")
        return cls(
            required=bool(data.get("required", False)),
            status=_get(data, "status", str, "event.review"),
            reasons=_strings(data.get("reasons", []), "event.review.reasons"),
            contests=tuple(contests),
            outcomes=tuple(outcomes),
        )


@dataclass(frozen=True)
class AccessEvent:
    """One access event, located on the ledger (block, transaction) where it was decided."""

    event_id: str
    tx_id: str
    decided_at: datetime
    officer: Officer
    subject: str
    action: str
    purpose: str
    tier: str
    emergency: bool
    case_ref: str | None
    decision: str
    records: tuple[RecordDecision, ...]
    obligations: tuple[str, ...]
    policy_version: int
    bundle_hash: str
    request: Mapping[str, Any]
    request_signature: str
    request_hash: str
    review: Review
    block: int | None = None
    tx_index: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def granted(self) -> tuple[RecordDecision, ...]:
        return tuple(r for r in self.records if r.granted)

    @property
    def denied(self) -> tuple[RecordDecision, ...]:
        return tuple(r for r in self.records if not r.granted)

    @property
    def record_ids(self) -> tuple[str, ...]:
        return tuple(r.record_id for r in self.records)

    def decision_part(self) -> dict[str, Any]:
        """The event without its ``review``: what must never change after the decision."""
        return {k: v for k, v in self.raw.items() if k != "review"}

    @classmethod
    def from_dict(
        cls, data: Any, *, block: int | None = None, tx_index: int | None = None
    ) -> AccessEvent:
        if not isinstance(data, Mapping) or data.get("format") != EVENT_FORMAT:
            raise EventFormatError(f"an access event is an object with format {EVENT_FORMAT!r}")
        w = "event"
        decision = _get(data, "decision", str, w)
        if decision not in DECISIONS:
            raise EventFormatError(f"event.decision {decision!r} is not one of {DECISIONS}")
        policy = _get(data, "policy", Mapping, w)
        request = _get(data, "request", Mapping, w)
        granted = _get(data, "granted", list, w)
        denied = _get(data, "denied", list, w)
        records = [
            RecordDecision.from_dict(g, granted=True, where=f"event.granted[{i}]")
            for i, g in enumerate(granted)
        ] + [
            RecordDecision.from_dict(d, granted=False, where=f"event.denied[{i}]")
            for i, d in enumerate(denied)
        ]
        case_ref = request.get("case_ref")
        return cls(
            event_id=_get(data, "event_id", str, w),
            tx_id=_get(data, "tx_id", str, w),
            decided_at=parse_ledger_time(data.get("decided_at"), "event.decided_at"),
            officer=Officer.from_dict(data.get("officer")),
            subject=_get(data, "subject", str, w),
            action=_get(data, "action", str, w),
            purpose=_get(data, "purpose", str, w),
            tier=_get(data, "tier", str, w),
            emergency=_get(data, "emergency", bool, w),
            case_ref=case_ref if isinstance(case_ref, str) and case_ref else None,
            decision=decision,
            records=tuple(records),
            obligations=_strings(data.get("obligations", []), "event.obligations"),
            policy_version=_get(policy, "version", int, "event.policy"),
            bundle_hash=_get(policy, "bundle_hash", str, "event.policy"),
            request=dict(request),
            request_signature=_get(data, "request_signature", str, w),
            request_hash=_get(data, "request_hash", str, w),
            review=Review.from_dict(data.get("review")),
            block=block,
            tx_index=tx_index,
            raw=dict(data),
        )

    @classmethod
    def from_state(
        cls, value: bytes, *, block: int | None = None, tx_index: int | None = None
    ) -> AccessEvent:
        """Parse the state value stored under ``access/<event_id>``."""
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventFormatError(f"access event is not JSON: {exc}") from None
        return cls.from_dict(data, block=block, tx_index=tx_index)

    @classmethod
    def from_event(
        cls, payload: bytes, *, block: int | None = None, tx_index: int | None = None
    ) -> AccessEvent:
        """Parse the payload of an ``AccessDecided`` chaincode event (the same document)."""
        return cls.from_state(payload, block=block, tx_index=tx_index)

    def with_review(self, review: Review, raw: Mapping[str, Any]) -> AccessEvent:
        """The same event after a contest or review rewrote its ``review`` member."""
        return AccessEvent(
            **{
                **{f: getattr(self, f) for f in self.__dataclass_fields__},
                "review": review,
                "raw": dict(raw),
            }
        )


def officers(events: Sequence[AccessEvent]) -> dict[str, Officer]:
    """The officers appearing in ``events``, by :attr:`Officer.key`."""
    return {e.officer.key: e.officer for e in events}
