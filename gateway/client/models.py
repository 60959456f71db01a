"""What the SDK returns: typed views of the gateway's answers.

Times stay the RFC 3339 strings the ledger wrote (``...Z``, microseconds):
they are what an auditor compares against the ledger. Every result keeps
the JSON it was built from in ``raw`` for fields this module does not name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LedgerInfo:
    """``GET /v1/ledger``: what the SDK needs to build proposals, and the gateway's limits."""

    channel: str
    chaincode: str
    height: int
    tip_hash: str
    policy_version: int | None
    bundle_hash: str | None
    grant_ttl_seconds: int
    max_clock_skew_seconds: int
    pending_ttl_seconds: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerInfo:
        policy = data.get("policy") or {}
        return cls(
            channel=str(data["channel"]),
            chaincode=str(data["chaincode"]),
            height=int(data["height"]),
            tip_hash=str(data["tip_hash"]),
            policy_version=int(policy["version"]) if "version" in policy else None,
            bundle_hash=str(policy["bundle_hash"]) if "bundle_hash" in policy else None,
            grant_ttl_seconds=int(data["grant_ttl_seconds"]),
            max_clock_skew_seconds=int(data["max_clock_skew_seconds"]),
            pending_ttl_seconds=int(data["pending_ttl_seconds"]),
        )


@dataclass(frozen=True)
class Committed:
    """A transaction committed as VALID, with the chaincode's result."""

    tx_id: str
    function: str
    block_number: int
    result: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Committed:
        result = data.get("result")
        return cls(
            tx_id=str(data["tx_id"]),
            function=str(data["function"]),
            block_number=int(data["block_number"]),
            result=dict(result) if isinstance(result, Mapping) else {},
            raw=dict(data),
        )


@dataclass(frozen=True)
class ErasureReceipt:
    """A record erased on the ledger (``EraseRecord`` committed VALID).

    By the time this is returned the gateway has crypto-shredded the record's
    tier keys and ciphertexts; the ledger keeps its hashes and access history.
    ``reason_hash`` is the SHA-256 of the reason text, if one was given (the
    text itself is not sent anywhere).
    """

    record_id: str
    owner_org: str
    version: int
    erased_at: str
    reason_hash: str | None
    tx_id: str
    block_number: int

    @classmethod
    def from_committed(cls, committed: Committed) -> ErasureReceipt:
        result = committed.result
        reason = result.get("reason_hash")
        return cls(
            record_id=str(result["record_id"]),
            owner_org=str(result["owner_org"]),
            version=int(result["version"]),
            erased_at=str(result["erased_at"]),
            reason_hash=str(reason) if reason is not None else None,
            tx_id=committed.tx_id,
            block_number=committed.block_number,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "owner_org": self.owner_org,
            "version": self.version,
            "erased_at": self.erased_at,
            "reason_hash": self.reason_hash,
            "tx_id": self.tx_id,
            "block_number": self.block_number,
        }


@dataclass(frozen=True)
class RecordReceipt:
    """A record version registered (or amended): where it is on the ledger."""

    record_id: str
    version: int
    record_type: str
    schema_version: int
    owner_org: str
    region: str
    subject: str
    tiers: dict[str, dict[str, Any]]
    tx_id: str
    block_number: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "version": self.version,
            "record_type": self.record_type,
            "schema_version": self.schema_version,
            "owner_org": self.owner_org,
            "region": self.region,
            "subject": self.subject,
            "tiers": self.tiers,
            "tx_id": self.tx_id,
            "block_number": self.block_number,
        }


@dataclass(frozen=True)
class RecordAccess:
    """The outcome of an access request for one record.

    For a granted record, ``tiers`` are the tiers released and ``fields`` the
    decrypted fields of exactly those tiers, merged by the catalogue schema
    ``schema_version`` the ledger names for that record version. For a denied
    record, ``reason`` says why (``default_deny``, ``forbid:<policy ids>``,
    ``record_not_found``) and ``fields`` is empty.
    """

    record_id: str
    record_type: str | None
    owner_org: str | None
    granted: bool
    version: int | None = None
    schema_version: int | None = None
    tiers: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    policy_ids: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "record_id": self.record_id,
            "record_type": self.record_type,
            "owner_org": self.owner_org,
            "granted": self.granted,
            "policy_ids": list(self.policy_ids),
        }
        if self.granted:
            data.update(
                version=self.version,
                schema_version=self.schema_version,
                tiers=list(self.tiers),
                obligations=list(self.obligations),
                fields=self.fields,
            )
        else:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class AccessResult:
    """A committed access decision, with the granted payloads decrypted locally."""

    tx_id: str
    event_id: str
    block_number: int
    decided_at: str
    decision: str
    policy_version: int
    bundle_hash: str
    emergency: bool
    obligations: tuple[str, ...]
    expires_at: str
    records: tuple[RecordAccess, ...]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def granted(self) -> list[RecordAccess]:
        return [r for r in self.records if r.granted]

    @property
    def denied(self) -> list[RecordAccess]:
        return [r for r in self.records if not r.granted]

    def record(self, record_id: str) -> RecordAccess:
        """The outcome for ``record_id`` (KeyError if the request did not cover it)."""
        for entry in self.records:
            if entry.record_id == record_id:
                return entry
        raise KeyError(record_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id,
            "event_id": self.event_id,
            "block_number": self.block_number,
            "decided_at": self.decided_at,
            "decision": self.decision,
            "policy": {"version": self.policy_version, "bundle_hash": self.bundle_hash},
            "emergency": self.emergency,
            "obligations": list(self.obligations),
            "expires_at": self.expires_at,
            "records": [r.to_dict() for r in self.records],
        }


@dataclass(frozen=True)
class AccessesPage:
    """One page of ``GET /v1/me/accesses``: access events about the citizen, oldest first."""

    subject: str
    accesses: list[dict[str, Any]]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccessesPage:
        cursor = data.get("next_cursor")
        return cls(
            subject=str(data["subject"]),
            accesses=[dict(a) for a in data.get("accesses", [])],
            next_cursor=str(cursor) if cursor else None,
        )
