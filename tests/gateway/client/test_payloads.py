"""Opening a key release: real envelope encryption, real sealed keys, every check exercised."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from crypto.envelope import (
    AssociatedData,
    content_address,
    encrypt_tier,
    generate_tier_key,
    generate_x25519_keypair,
    seal_key,
)
from gateway.client import PayloadError, ProtocolError
from gateway.client.payloads import missing_ciphertexts, open_access
from policies.canonical import canonical_json
from tests.gateway.client.people import CATALOGUE, new_person, record, up_to

RECORD_ID = "rec-1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _release(
    fields: dict[str, Any], recipient_public: bytes, tiers: tuple[str, ...] = ("T0", "T1")
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """An access result granting ``tiers`` of a residence permit, as the gateway shapes it."""
    groups = CATALOGUE.split_by_tier("residence_permit", 1, fields)
    entries, blobs = [], {}
    for tier in tiers:
        key = generate_tier_key()
        ciphertext = encrypt_tier(
            key,
            canonical_json(groups[tier]),
            AssociatedData(RECORD_ID, 1, "residence_permit", tier),
        )
        address = content_address(ciphertext)
        blobs[address] = ciphertext
        entries.append(
            {
                "tier": tier,
                "content_address": address,
                "size": len(ciphertext),
                "sealed_key": _b64(seal_key(key, recipient_public)),
                "blob_url": f"/v1/blobs/{address}",
                "ciphertext": None,
            }
        )
    access = {
        "tx_id": "ab" * 32,
        "event_id": "ab" * 32,
        "block_number": 9,
        "decided_at": "2026-01-01T00:00:00.000000Z",
        "decision": "partial",
        "policy": {"version": 1, "bundle_hash": "cd" * 32},
        "emergency": False,
        "obligations": [],
        "expires_at": "2026-01-01T00:15:00.000000Z",
        "recipient": {
            "msp_id": "EducationMSP",
            "cert_fingerprint": "ef" * 32,
            "public_key": _b64(recipient_public),
            "public_key_sha256": "00" * 32,
        },
        "grants": [
            {
                "record_id": RECORD_ID,
                "record_type": "residence_permit",
                "owner_org": "PublicSecurity",
                "version": 1,
                "schema_version": 1,
                "policy_ids": ["p"],
                "obligations": [],
                "tiers": entries,
            }
        ],
        "denials": [
            {
                "record_id": "rec-0",
                "record_type": "tax_record",
                "owner_org": "Tax",
                "reason": "default_deny",
                "policy_ids": [],
            }
        ],
    }
    return access, blobs


@pytest.fixture
def keys() -> tuple[bytes, bytes]:
    return generate_x25519_keypair()


@pytest.fixture
def fields() -> dict[str, Any]:
    return record("residence_permit", new_person())


def test_granted_tiers_decrypt_and_merge_to_exactly_those_fields(
    keys: tuple[bytes, bytes], fields: dict[str, Any]
) -> None:
    private, public = keys
    access, blobs = _release(fields, public)
    assert set(missing_ciphertexts(access)) == set(blobs)
    result = open_access(
        access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=blobs
    )
    assert result.decision == "partial"
    granted = result.record(RECORD_ID)
    assert granted.granted
    assert granted.tiers == ("T0", "T1")
    assert granted.fields == up_to("residence_permit", fields, "T1")
    denied = result.record("rec-0")
    assert not denied.granted
    assert denied.reason == "default_deny"


def test_inline_ciphertexts_need_no_fetch(
    keys: tuple[bytes, bytes], fields: dict[str, Any]
) -> None:
    private, public = keys
    access, blobs = _release(fields, public)
    for entry in access["grants"][0]["tiers"]:
        entry["ciphertext"] = _b64(blobs[entry["content_address"]])
    assert missing_ciphertexts(access) == {}
    result = open_access(
        access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched={}
    )
    assert result.granted[0].fields == up_to("residence_permit", fields, "T1")


def test_a_swapped_ciphertext_is_refused(keys: tuple[bytes, bytes], fields: dict[str, Any]) -> None:
    private, public = keys
    access, blobs = _release(fields, public)
    first = access["grants"][0]["tiers"][0]["content_address"]
    tampered = {**blobs, first: blobs[first][:-1] + bytes([blobs[first][-1] ^ 1])}
    with pytest.raises(PayloadError) as error:
        open_access(
            access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=tampered
        )
    assert error.value.code == "content_address_mismatch"


def test_keys_sealed_to_someone_else_are_refused(fields: dict[str, Any]) -> None:
    private, public = generate_x25519_keypair()
    _, other_public = generate_x25519_keypair()
    access, blobs = _release(fields, other_public)
    with pytest.raises(PayloadError) as error:
        open_access(
            access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=blobs
        )
    assert error.value.code == "recipient_key_mismatch"
    # Even when the answer claims our key, the sealed keys do not open.
    access["recipient"]["public_key"] = _b64(public)
    with pytest.raises(PayloadError) as opened:
        open_access(
            access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=blobs
        )
    assert opened.value.code == "decryption_failed"


def test_a_ciphertext_of_another_tier_does_not_decrypt(
    keys: tuple[bytes, bytes], fields: dict[str, Any]
) -> None:
    private, public = keys
    access, blobs = _release(fields, public)
    relabelled = copy.deepcopy(access)
    t0, t1 = relabelled["grants"][0]["tiers"]
    t0["tier"], t1["tier"] = "T1", "T0"  # associated data no longer matches
    with pytest.raises(PayloadError) as error:
        open_access(
            relabelled, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=blobs
        )
    assert error.value.code == "decryption_failed"


def test_a_field_in_the_wrong_tier_is_refused(
    keys: tuple[bytes, bytes], fields: dict[str, Any]
) -> None:
    private, public = keys
    groups = CATALOGUE.split_by_tier("residence_permit", 1, fields)
    groups["T1"]["residence_address"] = "moved down from T2"  # a custodian-side leak attempt
    key = generate_tier_key()
    ciphertext = encrypt_tier(
        key, canonical_json(groups["T1"]), AssociatedData(RECORD_ID, 1, "residence_permit", "T1")
    )
    access, _ = _release(fields, public, tiers=())
    access["grants"][0]["tiers"] = [
        {
            "tier": "T1",
            "content_address": content_address(ciphertext),
            "size": len(ciphertext),
            "sealed_key": _b64(seal_key(key, public)),
            "blob_url": "",
            "ciphertext": _b64(ciphertext),
        }
    ]
    with pytest.raises(PayloadError, match="x-tier"):
        open_access(access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched={})


def test_a_denial_needs_no_key(fields: dict[str, Any]) -> None:
    access, _ = _release(fields, generate_x25519_keypair()[1], tiers=())
    access["grants"] = []
    access["decision"] = "denied"
    result = open_access(access, private_key=None, public_key=None, catalogue=CATALOGUE, fetched={})
    assert result.granted == []
    assert [r.reason for r in result.denied] == ["default_deny"]


@pytest.mark.parametrize("schema_version", [None, "1", True])
def test_a_grant_without_a_schema_version_is_a_protocol_error(
    keys: tuple[bytes, bytes], fields: dict[str, Any], schema_version: object
) -> None:
    """The SDK merges by the version the grant names; it never guesses the latest."""
    private, public = keys
    access, blobs = _release(fields, public)
    if schema_version is None:
        del access["grants"][0]["schema_version"]
    else:
        access["grants"][0]["schema_version"] = schema_version
    with pytest.raises(ProtocolError, match="schema version"):
        open_access(
            access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=blobs
        )


def test_a_schema_version_the_local_catalogue_lacks_is_refused(
    keys: tuple[bytes, bytes], fields: dict[str, Any]
) -> None:
    private, public = keys
    access, blobs = _release(fields, public)
    access["grants"][0]["schema_version"] = 7
    with pytest.raises(PayloadError, match="catalogue schema"):
        open_access(
            access, private_key=private, public_key=public, catalogue=CATALOGUE, fetched=blobs
        )
