"""Tables of a department's off-chain store (SQLModel on SQLAlchemy 2).

A store holds exactly two kinds of secret-free data, and the bookkeeping of
their destruction:

``blob``
    ciphertexts of tier groups, keyed by their content address (lowercase hex
    SHA-256). The plaintext never reaches the store.
``tier_key``
    each tier key *sealed* to the department's custodian, keyed by
    ``(record_id, version, tier)``, with the address and size of the ciphertext
    it opens and the id of the custodian key it is sealed to (``key_id``;
    ``NULL`` on rows written before key ids were recorded, see
    :mod:`gateway.custodian_keys`). An unsealed key is refused on the way in.
``recipient_key``
    the same tier key sealed, beside the custodian's copy, to one more
    identity's registered X25519 key, keyed by the tier key plus the
    recipient's MSP ID and certificate fingerprint. Used for off-chain notes,
    which the note's subject may read (:mod:`gateway.service.notes`); never
    re-sealed by a custodian key rotation, destroyed with its record.
``tombstone`` / ``erased_blob``
    what crypto-shredding leaves behind: who erased which record when, and
    which addresses belonged to it, so a later read says "erased" instead of
    "not found" and an erased ciphertext cannot be stored again.

The tables live in their own SQLAlchemy registry so creating a store never
creates (or drops) tables other gateway modules declare on SQLModel's default
metadata. Table names carry no schema: a PostgreSQL deployment places each
department in its own schema with ``schema_translate_map``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, LargeBinary, String
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

#: Length of a content address (hex SHA-256).
ADDRESS_LENGTH = 64
#: Longest record id the store accepts (record ids are short opaque strings).
MAX_RECORD_ID_LENGTH = 256
#: Longest identity name recorded on a tombstone.
MAX_ACTOR_LENGTH = 256
#: Length of a custodian key id (short hex SHA-256 of the custodian public key).
KEY_ID_LENGTH = 16
#: Longest MSP ID of a recipient (organisation names are at most 64 characters).
MAX_MSP_ID_LENGTH = 64
#: Length of a certificate fingerprint (hex SHA-256 of the DER certificate).
FINGERPRINT_LENGTH = 64

store_registry = registry()


class StoreModel(SQLModel, registry=store_registry):
    """Base of the store's tables; its ``metadata`` holds only them."""


class StoredBlob(StoreModel, table=True):
    """One ciphertext under its content address."""

    __tablename__ = "blob"

    address: str = Field(sa_type=String(ADDRESS_LENGTH), primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = Field(nullable=False)


class SealedTierKey(StoreModel, table=True):
    """A tier key sealed to the custodian, and the ciphertext it opens."""

    __tablename__ = "tier_key"
    __table_args__ = (
        Index("ix_tier_key_address", "address"),
        Index("ix_tier_key_key_id", "key_id"),
    )

    record_id: str = Field(sa_type=String(MAX_RECORD_ID_LENGTH), primary_key=True)
    version: int = Field(primary_key=True)
    tier: str = Field(sa_type=String(2), primary_key=True)
    sealed_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    address: str = Field(sa_type=String(ADDRESS_LENGTH), nullable=False)
    size: int = Field(nullable=False)
    #: Which custodian key ``sealed_key`` is sealed to; ``None``: written before key ids.
    key_id: str | None = Field(default=None, sa_type=String(KEY_ID_LENGTH), nullable=True)


class RecipientTierKey(StoreModel, table=True):
    """A stored tier key sealed to one more recipient (an identity's X25519 key)."""

    __tablename__ = "recipient_key"

    record_id: str = Field(sa_type=String(MAX_RECORD_ID_LENGTH), primary_key=True)
    version: int = Field(primary_key=True)
    tier: str = Field(sa_type=String(2), primary_key=True)
    msp_id: str = Field(sa_type=String(MAX_MSP_ID_LENGTH), primary_key=True)
    cert_fingerprint: str = Field(sa_type=String(FINGERPRINT_LENGTH), primary_key=True)
    #: The X25519 public key ``sealed_key`` is sealed to (as registered when sealed).
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sealed_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Tombstone(StoreModel, table=True):
    """What remains of an erased record: when, by whom, how much was destroyed."""

    __tablename__ = "tombstone"

    record_id: str = Field(sa_type=String(MAX_RECORD_ID_LENGTH), primary_key=True)
    erased_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    erased_by: str = Field(sa_type=String(MAX_ACTOR_LENGTH), nullable=False)
    tier_keys_destroyed: int = Field(nullable=False)
    blobs_destroyed: int = Field(nullable=False)


class ErasedBlob(StoreModel, table=True):
    """An address whose ciphertext was destroyed with its record."""

    __tablename__ = "erased_blob"
    __table_args__ = (Index("ix_erased_blob_record_id", "record_id"),)

    address: str = Field(sa_type=String(ADDRESS_LENGTH), primary_key=True)
    record_id: str = Field(sa_type=String(MAX_RECORD_ID_LENGTH), nullable=False)
