"""Off-chain stores: per-department ciphertexts and custodian-sealed tier keys.

See :mod:`gateway.store.crud` and :mod:`gateway.store.keycopies` for the storage functions and
:mod:`gateway.store.engine` for opening a department's store.
"""

from gateway.store.crud import (
    TierKeyEntry,
    check_address,
    get_blob,
    get_tier_key,
    list_addresses,
    list_tier_keys,
    put_blob,
    put_tier_key,
    verify_blob,
    verify_blobs,
)
from gateway.store.engine import (
    DepartmentStore,
    StoreRegistry,
    create_store_engine,
    default_schema,
    default_store_path,
)
from gateway.store.erasure import Erasure, erase_record, get_erasure
from gateway.store.errors import (
    BlobCorruptedError,
    BlobHashMismatchError,
    BlobNotFoundError,
    InvalidAddressError,
    InvalidTierKeyError,
    RecordErasedError,
    RecordNotFoundError,
    StoreBusyError,
    StoreConfigError,
    StoreError,
    TierKeyConflictError,
    TierKeyNotFoundError,
)
from gateway.store.keycopies import (
    RecipientKeyEntry,
    Resealed,
    ScanPosition,
    count_tier_keys_not_sealed_to,
    list_recipient_keys,
    put_recipient_key,
    replace_sealed_keys,
    tier_keys_not_sealed_to,
)

__all__ = [
    "BlobCorruptedError",
    "BlobHashMismatchError",
    "BlobNotFoundError",
    "DepartmentStore",
    "Erasure",
    "InvalidAddressError",
    "InvalidTierKeyError",
    "RecipientKeyEntry",
    "RecordErasedError",
    "RecordNotFoundError",
    "Resealed",
    "ScanPosition",
    "StoreBusyError",
    "StoreConfigError",
    "StoreError",
    "StoreRegistry",
    "TierKeyConflictError",
    "TierKeyEntry",
    "TierKeyNotFoundError",
    "check_address",
    "count_tier_keys_not_sealed_to",
    "create_store_engine",
    "default_schema",
    "default_store_path",
    "erase_record",
    "get_blob",
    "get_erasure",
    "get_tier_key",
    "list_addresses",
    "list_recipient_keys",
    "list_tier_keys",
    "put_blob",
    "put_recipient_key",
    "put_tier_key",
    "replace_sealed_keys",
    "tier_keys_not_sealed_to",
    "verify_blob",
    "verify_blobs",
]
