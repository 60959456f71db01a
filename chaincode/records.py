"""Records: RegisterRecord, AmendRecord, GetRecord, ListRecordsBySubject.

A record on the ledger is metadata only (I1): its type and schema version
from the anchored catalogue, the owning department, the region, the subject
pseudonym, and for each tier the content address (SHA-256 of the ciphertext
in the owner's off-chain store) and size. ``metadata`` may add a few T0 facts
(status, dates, codes): a flat object of at most 16 members whose values are
integers, booleans or short ASCII strings; anything that looks like a
resident identity number is refused.

Only a registrar of the department that owns the record type in the anchored
catalogue may register or amend (:func:`chaincode.authz.require_registrar`),
and the anchored Cedar policy must permit ``register`` (which also ties the
record's region to the registrar's). An amendment writes version ``n + 1``
and keeps every earlier version under ``record_version``; type, subject,
owner and region never change.

``record_id`` may be chosen by the client (so it can bind the id into the
ciphertexts' associated data before submitting); if omitted it is derived
from the transaction id: :func:`record_id_for_tx`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from chaincode import authz
from chaincode.citizens import citizen_subject
from chaincode.codec import (
    HEX_DIGEST,
    IDENTIFIER,
    REGION,
    SNAKE,
    boolean,
    check_fields,
    integer,
    subject,
    text,
)
from chaincode.context import Tx
from chaincode.erasure import is_erased
from chaincode.errors import Conflict, Forbidden, InvalidArgument, NotFound
from chaincode.governance import anchored_policy
from chaincode.ledger import RECORD, RECORD_VERSION, SUBJECT_RECORD, sequence_key
from policies.catalogue import Catalogue
from policies.errors import UnknownRecordTypeError
from policies.requests import RecordResource
from policies.vocabulary import TIERS

RECORD_FORMAT: Final = "accessledger-record/1"
_MAX_METADATA: Final = 16
_MAX_SIZE: Final = 2**40
_METADATA_TEXT = re.compile(r"^[A-Za-z0-9 ._:/+\-]{0,64}$")
# 18-character GB 11643 numbers and the older 15-digit form, anywhere in a value.
_IDENTITY_NUMBER = re.compile(
    r"(?<![0-9])[1-8][0-9]{16}[0-9Xx](?![0-9])|(?<![0-9])[1-8][0-9]{14}(?![0-9])"
)
_FIELDS: Final = {"record_type", "schema_version", "subject", "region", "tiers"}


def record_id_for_tx(tx_id: str) -> str:
    """The record id RegisterRecord derives when the client gives none."""
    return f"rec-{tx_id}"


def _tiers(arg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tiers = arg["tiers"]
    if not isinstance(tiers, dict) or not tiers or not set(tiers) <= set(TIERS):
        raise InvalidArgument(f"tiers must map some of {', '.join(TIERS)} to hash and size")
    result = {}
    for tier in sorted(tiers):
        entry = tiers[tier]
        if not isinstance(entry, dict):
            raise InvalidArgument(f"tiers.{tier} must be an object")
        check_fields(entry, f"tiers.{tier}", {"content_address", "size"})
        result[tier] = {
            "content_address": text(entry, "content_address", HEX_DIGEST, what=f"tiers.{tier}"),
            "size": integer(entry, "size", what=f"tiers.{tier}", high=_MAX_SIZE),
        }
    return result


def _metadata(arg: dict[str, Any]) -> dict[str, Any]:
    metadata = arg.get("metadata", {})
    if not isinstance(metadata, dict) or len(metadata) > _MAX_METADATA:
        raise InvalidArgument(f"metadata must be an object of at most {_MAX_METADATA} members")
    for name, value in metadata.items():
        if not SNAKE.fullmatch(name):
            raise InvalidArgument(f"metadata member names must match {SNAKE.pattern}")
        if isinstance(value, str):
            if not _METADATA_TEXT.fullmatch(value):
                raise InvalidArgument(
                    f"metadata.{name} must be at most 64 ASCII letters, digits and ._:/+- "
                    "(T0 facts only, no names or free text)"
                )
            if _IDENTITY_NUMBER.search(value):
                raise InvalidArgument(
                    f"metadata.{name} looks like a resident identity number; the ledger holds"
                    " pseudonyms only",
                    code="personal_data_refused",
                )
        elif not isinstance(value, bool | int):
            raise InvalidArgument(f"metadata.{name} must be a string, integer or boolean")
    return dict(metadata)


def _owner(catalogue: Catalogue, record_type: str, version: int) -> str:
    try:
        return catalogue.owner_org(record_type, version)
    except UnknownRecordTypeError as exc:
        raise InvalidArgument(exc.message, code=exc.code) from None


async def _load(tx: Tx, record_id: str) -> dict[str, Any]:
    record = await tx.ledger.get_json(tx.ledger.key(RECORD, record_id))
    if record is None:
        raise NotFound(f"record {record_id} does not exist")
    return record


async def register_record(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Register a new record (version 1)."""
    check_fields(arg, "record", _FIELDS, {"record_id", "metadata"})
    record_id = (
        text(arg, "record_id", IDENTIFIER, what="record")
        if "record_id" in arg
        else record_id_for_tx(tx.ledger.tx_id)
    )
    record_type = text(arg, "record_type", SNAKE, what="record")
    schema_version = integer(arg, "schema_version", what="record", low=1, high=9999)
    about = subject(arg, what="record")
    region = text(arg, "region", REGION, what="record")
    tiers = _tiers(arg)
    metadata = _metadata(arg)

    caller = await tx.caller()
    policy = await anchored_policy(tx)
    owner_org = _owner(policy.bundle.catalogue, record_type, schema_version)
    authz.require_registrar(caller, owner_org, record_type)
    decision = authz.check_register(
        caller,
        RecordResource(record_id, owner_org, record_type, "T0", region),
        policy.bundle.policy_set,
    )
    key = tx.ledger.key(RECORD, record_id)
    if await tx.ledger.get(key) is not None:
        raise Conflict(f"record {record_id} already exists", code="record_exists")

    change = {"by": caller.ref(), "at": tx.ledger.now_text, "tx_id": tx.ledger.tx_id}
    record = {
        "format": RECORD_FORMAT,
        "record_id": record_id,
        "record_type": record_type,
        "schema_version": schema_version,
        "owner_org": owner_org,
        "owner_msp": caller.msp_id,
        "region": region,
        "subject": about,
        "tiers": tiers,
        "metadata": metadata,
        "version": 1,
        "registered": change,
        "updated": change,
        "policy": {**policy.ref(), "policy_ids": list(decision.determining_policy_ids)},
    }
    await tx.ledger.put_json(key, record)
    await tx.ledger.put_json(tx.ledger.key(RECORD_VERSION, record_id, sequence_key(1)), record)
    await tx.ledger.put_json(
        tx.ledger.key(SUBJECT_RECORD, about, record_id),
        {"owner_org": owner_org, "record_type": record_type},
    )
    tx.ledger.set_event("RecordRegistered", _summary(record))
    return record


async def amend_record(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Write version n + 1 of an existing record; earlier versions stay readable."""
    check_fields(arg, "record", _FIELDS | {"record_id"}, {"metadata"})
    record_id = text(arg, "record_id", IDENTIFIER, what="record")
    record_type = text(arg, "record_type", SNAKE, what="record")
    schema_version = integer(arg, "schema_version", what="record", low=1, high=9999)
    about = subject(arg, what="record")
    region = text(arg, "region", REGION, what="record")
    tiers = _tiers(arg)
    metadata = _metadata(arg)

    caller = await tx.caller()
    policy = await anchored_policy(tx)
    current = await _load(tx, record_id)
    owner_org = _owner(policy.bundle.catalogue, record_type, schema_version)
    authz.require_registrar(caller, str(current["owner_org"]), str(current["record_type"]))
    if is_erased(current):
        raise Conflict(f"record {record_id} is erased; it cannot be amended", code="record_erased")
    for name, value in (("record_type", record_type), ("subject", about), ("region", region)):
        if current[name] != value:
            raise Conflict(
                f"an amendment cannot change the record's {name}", code="immutable_field"
            )
    if owner_org != current["owner_org"]:
        raise Conflict("schema version belongs to another owner department", code="immutable_field")
    decision = authz.check_register(
        caller,
        RecordResource(record_id, owner_org, record_type, "T0", region),
        policy.bundle.policy_set,
    )
    version = int(current["version"]) + 1
    record = {
        **current,
        "schema_version": schema_version,
        "tiers": tiers,
        "metadata": metadata,
        "version": version,
        "updated": {"by": caller.ref(), "at": tx.ledger.now_text, "tx_id": tx.ledger.tx_id},
        "policy": {**policy.ref(), "policy_ids": list(decision.determining_policy_ids)},
    }
    await tx.ledger.put_json(tx.ledger.key(RECORD, record_id), record)
    await tx.ledger.put_json(
        tx.ledger.key(RECORD_VERSION, record_id, sequence_key(version)), record
    )
    tx.ledger.set_event("RecordAmended", _summary(record))
    return record


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "record_id": record["record_id"],
        "version": record["version"],
        "record_type": record["record_type"],
        "owner_org": record["owner_org"],
        "region": record["region"],
        "subject": record["subject"],
        "tiers": sorted(record["tiers"]),
        "tx_id": record["updated"]["tx_id"],
    }


async def get_record(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """A record's current version, and with ``include_history`` every version."""
    check_fields(arg, "GetRecord argument", {"record_id"}, {"include_history"})
    record_id = text(arg, "record_id", IDENTIFIER)
    include_history = boolean(arg, "include_history")
    caller = await tx.caller()
    record = await _load(tx, record_id)
    mine = await citizen_subject(tx, caller) if authz.is_citizen(caller) else None
    if not authz.may_view_record(caller, record["owner_org"], record["subject"], mine):
        raise Forbidden(
            "record metadata is visible to its owner department, auditors and its subject;"
            " other departments use RequestAccess"
        )
    result: dict[str, Any] = {"record": record}
    if include_history:
        result["history"] = [
            json.loads(value) for _, value in await tx.ledger.scan(RECORD_VERSION, [record_id])
        ]
    return result


async def list_records_by_subject(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """The records about a subject the caller may see (see :func:`authz.may_view_record`)."""
    check_fields(arg, "ListRecordsBySubject argument", {"subject"})
    about = subject(arg)
    caller = await tx.caller()
    mine = await citizen_subject(tx, caller) if authz.is_citizen(caller) else None
    if authz.is_citizen(caller) and mine != about:
        raise Forbidden("a citizen may list only the records about themselves")
    records = []
    for parts, value in await tx.ledger.scan(SUBJECT_RECORD, [about]):
        index = json.loads(value)
        if not authz.may_view_record(caller, index["owner_org"], about, mine):
            continue
        record = await tx.ledger.get_json(tx.ledger.key(RECORD, parts[-1]))
        if record is not None:
            records.append(record)
    return {"subject": about, "records": records}
