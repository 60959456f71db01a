"""Access results: the committed decision and the key release, as the officer receives them.

After an access request commits, :func:`access_result` asks the custodians
to verify the committed event and release the granted tier keys
(:mod:`gateway.custodian`), then shapes the answer: per granted record the
tiers with their ciphertext references and the tier keys sealed to the
officer's registered X25519 key and the catalogue schema version the
ledger's copy of the record names (the officer merges the tiers by it), per
denied record the reason and the determining policies, and the policy
version the decision was made under.
A denial needs no key: it is verified and reported, and nothing is released.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chaincode.codec import format_time
from gateway.custodian import Custodians, VerifiedGrant
from gateway.keycustodian import ReleasedTier, record_version_key
from gateway.schemas import AccessResult, Denial, Grant, GrantedTier, PolicyRef, Recipient
from gateway.store import StoreError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


RecordVersion = tuple[str, int]


def _schema_versions(custodians: Custodians, grant: VerifiedGrant) -> dict[RecordVersion, int]:
    """The schema version of each granted record version, from the ledger's copy of it.

    A record version is immutable once committed, so this read agrees with the
    one the custodians make for the release; a version the ledger lacks is
    left out here and refused by the release.
    """
    stored = custodians.ledger.states([record_version_key(record) for record in grant.granted])
    found: dict[RecordVersion, int] = {}
    for record, data in zip(grant.granted, stored, strict=True):
        if data is not None:
            found[(record.record_id, record.version)] = int(json.loads(data)["schema_version"])
    return found


def _grants(
    event: Mapping[str, Any],
    released: list[ReleasedTier],
    schema_versions: Mapping[RecordVersion, int],
    ciphertexts: Mapping[str, bytes] | None,
) -> list[Grant]:
    by_record: dict[tuple[str, int], list[ReleasedTier]] = {}
    for tier in released:
        by_record.setdefault((tier.record_id, tier.version), []).append(tier)
    grants = []
    for entry in event.get("granted", []):
        key = (str(entry["record_id"]), int(entry["version"]))
        tiers = by_record.get(key, [])
        grants.append(
            Grant(
                record_id=entry["record_id"],
                record_type=entry["record_type"],
                owner_org=entry["owner_org"],
                version=key[1],
                schema_version=schema_versions[key],
                policy_ids=list(entry.get("policy_ids", [])),
                obligations=list(entry.get("obligations", [])),
                tiers=[
                    GrantedTier(
                        tier=t.tier,
                        content_address=t.content_address,
                        size=t.size,
                        sealed_key=_b64(t.sealed_key),
                        blob_url=f"/v1/blobs/{t.content_address}",
                        ciphertext=(
                            _b64(ciphertexts[t.content_address])
                            if ciphertexts is not None and t.content_address in ciphertexts
                            else None
                        ),
                    )
                    for t in tiers
                ],
            )
        )
    return grants


def _denials(event: Mapping[str, Any]) -> list[Denial]:
    return [
        Denial(
            record_id=entry["record_id"],
            record_type=entry.get("record_type"),
            owner_org=entry.get("owner_org"),
            reason=str(entry.get("reason", "denied")),
            policy_ids=list(entry.get("policy_ids", [])),
        )
        for entry in event.get("denied", [])
    ]


def access_result(
    custodians: Custodians,
    grant: VerifiedGrant,
    *,
    now: datetime,
    include_ciphertexts: bool = False,
) -> AccessResult:
    """Release the granted keys of a verified grant and build the officer's answer."""
    event = grant.event
    recipient_key: bytes | None = None
    released: list[ReleasedTier] = []
    schema_versions: dict[RecordVersion, int] = {}
    if grant.granted:
        schema_versions = _schema_versions(custodians, grant)
        recipient_key, released = custodians.release(grant, now)
    ciphertexts: dict[str, bytes] | None = None
    if include_ciphertexts:
        ciphertexts = {}
        for tier in released:
            try:
                ciphertexts[tier.content_address] = custodians.stores.store(tier.org).get_blob(
                    tier.content_address
                )
            except StoreError:
                continue  # the reference is still there; GET /v1/blobs says why
    policy = event.get("policy", {})
    return AccessResult(
        tx_id=grant.tx_id,
        event_id=str(event.get("event_id", grant.tx_id)),
        block_number=grant.block_number,
        decided_at=format_time(grant.decided_at),
        decision=event["decision"],
        policy=PolicyRef(version=int(policy["version"]), bundle_hash=str(policy["bundle_hash"])),
        emergency=bool(event.get("emergency", False)),
        obligations=list(event.get("obligations", [])),
        expires_at=format_time(grant.expires_at),
        recipient=(
            Recipient(
                msp_id=grant.officer_msp_id,
                cert_fingerprint=grant.officer_fingerprint,
                public_key=_b64(recipient_key),
                public_key_sha256=hashlib.sha256(recipient_key).hexdigest(),
            )
            if recipient_key is not None
            else None
        ),
        grants=_grants(event, released, schema_versions, ciphertexts),
        denials=_denials(event),
    )
