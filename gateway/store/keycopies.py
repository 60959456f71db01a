"""Copies of sealed tier keys: recipients' copies and re-sealing to a new custodian key.

Same conventions as :mod:`gateway.store.crud` (a session and keyword-only
arguments, one committed unit of work, frozen dataclasses out):

* a recipient copy of a tier key (:func:`put_recipient_key`) is sealed to one
  identity's X25519 key, points at a stored tier key, and goes when its
  record is erased;
* re-sealing (custodian key rotation) replaces a sealed key only if the row
  still holds exactly the sealed key that was read, so a row erased or
  re-sealed meanwhile is left alone and an erased record never comes back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway.store.crud import (
    TierKeyEntry,
    check_key_id,
    check_record_id,
    check_tier_key_input,
    existing_tier_key,
    refuse_if_erased,
    same_bytes,
    tier_key_entry,
)
from gateway.store.errors import (
    InvalidTierKeyError,
    StoreError,
    TierKeyConflictError,
    TierKeyNotFoundError,
)
from gateway.store.locks import records_locked
from gateway.store.models import MAX_MSP_ID_LENGTH, RecipientTierKey, SealedTierKey

_MSP_ID = re.compile(rf"[A-Za-z][A-Za-z0-9_.-]{{0,{MAX_MSP_ID_LENGTH - 1}}}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_X25519_PUBLIC_SIZE = 32


@dataclass(frozen=True)
class RecipientKeyEntry:
    """A tier key sealed to one recipient identity, beside the custodian's copy."""

    record_id: str
    version: int
    tier: str
    msp_id: str
    cert_fingerprint: str
    public_key: bytes
    sealed_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Resealed:
    """One row's replacement: the sealed key that was read and what replaces it."""

    record_id: str
    version: int
    tier: str
    old_sealed_key: bytes = field(repr=False)
    new_sealed_key: bytes = field(repr=False)
    key_id: str


# ------------------------------------------------------------------ recipient copies


def _check_recipient(msp_id: object, cert_fingerprint: object, public_key: object) -> None:
    if not isinstance(msp_id, str) or not _MSP_ID.fullmatch(msp_id):
        raise InvalidTierKeyError(f"recipient MSP ID {msp_id!r} is not an MSP ID")
    if not isinstance(cert_fingerprint, str) or not _FINGERPRINT.fullmatch(cert_fingerprint):
        raise InvalidTierKeyError("recipient fingerprint must be 64 lowercase hex characters")
    if not isinstance(public_key, bytes) or len(public_key) != _X25519_PUBLIC_SIZE:
        raise InvalidTierKeyError("recipient public key must be a 32-byte X25519 key")


def _recipient_entry(row: RecipientTierKey) -> RecipientKeyEntry:
    return RecipientKeyEntry(
        record_id=row.record_id,
        version=row.version,
        tier=row.tier,
        msp_id=row.msp_id,
        cert_fingerprint=row.cert_fingerprint,
        public_key=bytes(row.public_key),
        sealed_key=bytes(row.sealed_key),
    )


def put_recipient_key(*, session: Session, entry: RecipientKeyEntry) -> RecipientKeyEntry:
    """Store a stored tier key's copy sealed to one more recipient.

    The tier key it copies must be stored (so must its ciphertext); the record
    must not be erased. Repeating an identical put is a no-op; a different
    sealed key or public key for the same recipient raises ``tier_key_conflict``.
    """
    check_tier_key_input(entry.record_id, entry.version, entry.tier, entry.sealed_key, 0)
    _check_recipient(entry.msp_id, entry.cert_fingerprint, entry.public_key)
    with records_locked(session, [entry.record_id]):
        if existing_tier_key(session, entry.record_id, entry.version, entry.tier) is None:
            refuse_if_erased(session, entry.record_id)
            raise TierKeyNotFoundError(
                f"no sealed key for record {entry.record_id} version {entry.version} tier"
                f" {entry.tier} to copy for a recipient"
            )
        primary = (entry.record_id, entry.version, entry.tier, entry.msp_id, entry.cert_fingerprint)
        session.add(RecipientTierKey(**vars(entry)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            row = session.get(RecipientTierKey, primary, populate_existing=True)
            if row is None:  # pragma: no cover - the row vanished again
                raise
            existing = _recipient_entry(row)
            if same_bytes(existing.sealed_key, entry.sealed_key) and same_bytes(
                existing.public_key, entry.public_key
            ):
                return existing
            raise TierKeyConflictError(
                f"record {entry.record_id} version {entry.version} tier {entry.tier} already has"
                f" a different key sealed to {entry.msp_id}/{entry.cert_fingerprint}"
            ) from None
        return entry


def list_recipient_keys(
    *, session: Session, record_id: str, msp_id: str | None = None
) -> list[RecipientKeyEntry]:
    """A record's recipient copies (of one MSP's identities, or all), in key order."""
    check_record_id(record_id)
    refuse_if_erased(session, record_id)
    statement = select(RecipientTierKey).where(RecipientTierKey.record_id == record_id)
    if msp_id is not None:
        statement = statement.where(RecipientTierKey.msp_id == msp_id)
    rows = session.exec(
        statement.order_by(
            col(RecipientTierKey.version),
            col(RecipientTierKey.tier),
            col(RecipientTierKey.msp_id),
            col(RecipientTierKey.cert_fingerprint),
        )
    ).all()
    return [_recipient_entry(row) for row in rows]


# ------------------------------------------------------------------------ re-sealing

#: Where a scan of the tier keys resumes: the primary key of the last row seen.
ScanPosition = tuple[str, int, str]


def _not_sealed_to(key_id: str) -> Any:
    column = col(SealedTierKey.key_id)
    return or_(column.is_(None), column != key_id)


def tier_keys_not_sealed_to(
    *, session: Session, key_id: str, after: ScanPosition | None = None, limit: int = 100
) -> list[TierKeyEntry]:
    """Up to ``limit`` tier keys whose recorded key id is not ``key_id`` (or is unknown).

    Rows come in primary-key order strictly after ``after``, so a caller pages
    through the store even when some rows cannot be re-sealed.
    """
    check_key_id(key_id)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise StoreError(f"limit must be a positive integer, got {limit!r}", code="invalid_limit")
    statement = select(SealedTierKey).where(_not_sealed_to(key_id))
    if after is not None:
        statement = statement.where(
            tuple_(
                col(SealedTierKey.record_id), col(SealedTierKey.version), col(SealedTierKey.tier)
            )
            > tuple_(*after)
        )
    rows = session.exec(
        statement.order_by(
            col(SealedTierKey.record_id), col(SealedTierKey.version), col(SealedTierKey.tier)
        ).limit(limit)
    ).all()
    return [tier_key_entry(row) for row in rows]


def count_tier_keys_not_sealed_to(*, session: Session, key_id: str) -> int:
    """How many stored tier keys are not recorded as sealed to ``key_id``."""
    check_key_id(key_id)
    statement = select(func.count()).select_from(SealedTierKey).where(_not_sealed_to(key_id))
    return int(session.exec(statement).one())


def replace_sealed_keys(*, session: Session, replacements: Sequence[Resealed]) -> int:
    """Swap in re-sealed keys, all in one transaction; return how many rows changed.

    Each row is updated only if it still holds ``old_sealed_key`` (a
    compare-and-swap): a row erased, or re-sealed by another run, since it was
    read is skipped, never resurrected or overwritten.
    """
    for item in replacements:
        check_key_id(item.key_id)
        check_tier_key_input(item.record_id, item.version, item.tier, item.new_sealed_key, 0)
    changed = 0
    # The batch's records locked first, as an erasure locks them: the two never deadlock.
    with records_locked(session, [item.record_id for item in replacements]):
        for item in replacements:
            result = session.exec(
                update(SealedTierKey)
                .where(
                    col(SealedTierKey.record_id) == item.record_id,
                    col(SealedTierKey.version) == item.version,
                    col(SealedTierKey.tier) == item.tier,
                    col(SealedTierKey.sealed_key) == item.old_sealed_key,
                )
                .values(sealed_key=item.new_sealed_key, key_id=item.key_id)
            )
            changed += int(result.rowcount)
        session.commit()
    return changed
