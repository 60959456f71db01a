"""Opening a key release: verify and decrypt the granted tiers, merge them into fields.

A committed grant comes back as, per granted record, the released tiers,
each with its ciphertext's content address (and the ciphertext inline, or a
blob URL) and the tier key sealed to the officer's X25519 key registered on
the ledger. Opening it, per tier:

1. the ciphertext must hash to the content address the ledger names (and
   have the stated size) -- a gateway cannot swap ciphertexts;
2. the sealed key opens only with the officer's X25519 private key;
3. XChaCha20-Poly1305 authenticates the ciphertext under the record id,
   version, type and tier (associated data), so a ciphertext of another
   record, version or tier does not decrypt;
4. the tier groups are merged with the catalogue's ``merge_tiers`` under the
   schema version the grant names (the one on the ledger's copy of the
   record), which refuses a field found in a tier it does not belong to.

Any failure is a :class:`~gateway.client.errors.PayloadError`; nothing
partially decrypted is returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from crypto.envelope import AssociatedData, decrypt_tier, open_sealed_key
from crypto.errors import AccessLedgerError, DecryptionError
from gateway.client.errors import PayloadError, ProtocolError
from gateway.client.models import AccessResult, RecordAccess
from policies.catalogue import Catalogue


def _b64decode(value: object, what: str, tx_id: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{what} is not valid base64", tx_id=tx_id) from None


def missing_ciphertexts(access: Mapping[str, Any]) -> dict[str, str]:
    """Content address -> blob URL of every granted tier whose ciphertext is not inline."""
    wanted: dict[str, str] = {}
    for grant in access.get("grants", []):
        for tier in grant.get("tiers", []):
            if tier.get("ciphertext") is None:
                address = str(tier["content_address"])
                wanted[address] = str(tier.get("blob_url") or f"/v1/blobs/{address}")
    return wanted


def _ciphertext(
    tier: Mapping[str, Any], fetched: Mapping[str, bytes], tx_id: str, record_id: str
) -> bytes:
    address = str(tier["content_address"])
    inline = tier.get("ciphertext")
    data = _b64decode(inline, "ciphertext", tx_id) if inline is not None else fetched.get(address)
    if data is None:
        raise ProtocolError(f"no ciphertext for {record_id} {tier['tier']}", tx_id=tx_id)
    if hashlib.sha256(data).hexdigest() != address or len(data) != int(tier["size"]):
        raise PayloadError(
            f"the ciphertext of {record_id} {tier['tier']} does not match the content address"
            " the ledger names",
            code="content_address_mismatch",
            tx_id=tx_id,
        )
    return data


def _open_grant(
    grant: Mapping[str, Any],
    *,
    private_key: bytes,
    catalogue: Catalogue,
    fetched: Mapping[str, bytes],
    tx_id: str,
) -> RecordAccess:
    record_id = str(grant["record_id"])
    record_type = str(grant["record_type"])
    version = int(grant["version"])
    groups: dict[str, dict[str, Any]] = {}
    for tier in grant.get("tiers", []):
        name = str(tier["tier"])
        ciphertext = _ciphertext(tier, fetched, tx_id, record_id)
        sealed = _b64decode(tier["sealed_key"], "sealed_key", tx_id)
        try:
            key = open_sealed_key(sealed, private_key)
            plaintext = decrypt_tier(
                key, ciphertext, AssociatedData(record_id, version, record_type, name)
            )
        except DecryptionError:
            raise PayloadError(
                f"the {name} payload of {record_id} does not decrypt with this identity's key",
                code="decryption_failed",
                tx_id=tx_id,
            ) from None
        try:
            group = json.loads(plaintext)
        except ValueError:
            group = None
        if not isinstance(group, dict):
            raise PayloadError(
                f"the {name} payload of {record_id} is not a JSON object", tx_id=tx_id
            )
        groups[name] = group
    schema_version = grant.get("schema_version")
    if isinstance(schema_version, bool) or not isinstance(schema_version, int):
        raise ProtocolError(f"the grant of {record_id} names no schema version", tx_id=tx_id)
    try:
        fields = catalogue.merge_tiers(record_type, schema_version, groups)
    except AccessLedgerError as exc:
        raise PayloadError(
            f"the payload of {record_id} does not fit its catalogue schema: {exc.message}",
            tx_id=tx_id,
        ) from exc
    return RecordAccess(
        record_id=record_id,
        record_type=record_type,
        owner_org=str(grant["owner_org"]),
        granted=True,
        version=version,
        schema_version=schema_version,
        tiers=tuple(groups),
        fields=fields,
        policy_ids=tuple(str(p) for p in grant.get("policy_ids", [])),
        obligations=tuple(str(o) for o in grant.get("obligations", [])),
    )


def open_access(
    access: Mapping[str, Any],
    *,
    private_key: bytes | None,
    public_key: bytes | None,
    catalogue: Catalogue,
    fetched: Mapping[str, bytes],
) -> AccessResult:
    """The typed, decrypted :class:`AccessResult` of an access result from the gateway."""
    tx_id = str(access["tx_id"])
    grants = list(access.get("grants", []))
    if grants:
        recipient = access.get("recipient") or {}
        if private_key is None or public_key is None:
            raise PayloadError(
                "this identity has no X25519 key to open the released tier keys with",
                code="no_encryption_key",
                tx_id=tx_id,
            )
        if _b64decode(recipient.get("public_key", ""), "recipient.public_key", tx_id) != public_key:
            raise PayloadError(
                "the tier keys were sealed to another X25519 key than this client's;"
                " register this identity's key (register_encryption_key) and fetch again",
                code="recipient_key_mismatch",
                tx_id=tx_id,
            )
    records = [
        _open_grant(
            g, private_key=private_key or b"", catalogue=catalogue, fetched=fetched, tx_id=tx_id
        )
        for g in grants
    ]
    records += [
        RecordAccess(
            record_id=str(d["record_id"]),
            record_type=d.get("record_type"),
            owner_org=d.get("owner_org"),
            granted=False,
            reason=str(d.get("reason", "denied")),
            policy_ids=tuple(str(p) for p in d.get("policy_ids", [])),
        )
        for d in access.get("denials", [])
    ]
    records.sort(key=lambda r: r.record_id)
    policy = access.get("policy") or {}
    return AccessResult(
        tx_id=tx_id,
        event_id=str(access.get("event_id", tx_id)),
        block_number=int(access["block_number"]),
        decided_at=str(access["decided_at"]),
        decision=str(access["decision"]),
        policy_version=int(policy.get("version", 0)),
        bundle_hash=str(policy.get("bundle_hash", "")),
        emergency=bool(access.get("emergency", False)),
        obligations=tuple(str(o) for o in access.get("obligations", [])),
        expires_at=str(access["expires_at"]),
        records=tuple(records),
        raw=dict(access),
    )
