"""Errors of the off-chain store, each with a stable ``code``.

The gateway turns these into RFC 9457 problems and the CLI into one line, so
the codes are part of the public interface: never rename one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from crypto.errors import AccessLedgerError


class StoreError(AccessLedgerError):
    """Base of every off-chain store error."""

    code = "store_error"


class StoreBusyError(StoreError):
    """Another writer held a lock this write needs for longer than the store waits."""

    code = "store_busy"


class StoreConfigError(StoreError):
    """A department store is misconfigured (unsupported URL, bad organisation name)."""

    code = "store_config_invalid"


class InvalidAddressError(StoreError):
    """A content address is not 64 lowercase hex characters (a SHA-256)."""

    code = "invalid_address"


class BlobNotFoundError(StoreError):
    """No ciphertext is stored under the address (and none was ever erased there)."""

    code = "blob_not_found"

    def __init__(self, address: str) -> None:
        super().__init__(f"no ciphertext stored under {address}")
        self.address = address


class BlobHashMismatchError(StoreError):
    """A ciphertext offered for storage does not hash to the address it was offered under."""

    code = "blob_hash_mismatch"

    def __init__(self, *, expected: str, actual: str) -> None:
        super().__init__(f"ciphertext hashes to {actual}, not to the claimed address {expected}")
        self.expected = expected
        self.actual = actual


class BlobCorruptedError(StoreError):
    """Stored ciphertext no longer hashes to its address: the store was altered."""

    code = "blob_corrupted"

    def __init__(self, addresses: Sequence[str]) -> None:
        shown = ", ".join(addresses[:5]) + (" ..." if len(addresses) > 5 else "")
        super().__init__(
            f"{len(addresses)} stored ciphertext(s) no longer match their SHA-256 address: {shown}"
        )
        self.addresses = tuple(addresses)


class TierKeyNotFoundError(StoreError):
    """No sealed tier key is stored for the record, version and tier."""

    code = "tier_key_not_found"


class TierKeyConflictError(StoreError):
    """A different sealed key or ciphertext is already stored for that record, version and tier."""

    code = "tier_key_conflict"


class InvalidTierKeyError(StoreError):
    """A tier key entry is malformed: bad tier, version, sealed-key format or ciphertext size."""

    code = "tier_key_invalid"


class RecordNotFoundError(StoreError):
    """The store holds nothing for the record (erasure of an unknown record)."""

    code = "record_not_found"


class RecordErasedError(StoreError):
    """The record was crypto-shredded: its tier keys and ciphertexts are gone for good."""

    code = "record_erased"

    def __init__(self, record_id: str, *, erased_at: datetime | None = None) -> None:
        when = f" at {erased_at.isoformat()}" if erased_at is not None else ""
        super().__init__(f"record {record_id} was erased{when}; its payload no longer exists")
        self.record_id = record_id
        self.erased_at = erased_at
