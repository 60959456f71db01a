"""Off-chain stores: per-department ciphertexts and custodian-sealed tier keys.

See :mod:`gateway.store.crud` for the storage functions and
:mod:`gateway.store.engine` for opening a department's store.
"""

from gateway.store.crud import (
    Erasure,
    TierKeyEntry,
    check_address,
    erase_record,
    get_blob,
    get_erasure,
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
from gateway.store.errors import (
    BlobCorruptedError,
    BlobHashMismatchError,
    BlobNotFoundError,
    InvalidAddressError,
    InvalidTierKeyError,
    RecordErasedError,
    RecordNotFoundError,
    StoreConfigError,
    StoreError,
    TierKeyConflictError,
    TierKeyNotFoundError,
)

__all__ = [
    "BlobCorruptedError",
    "BlobHashMismatchError",
    "BlobNotFoundError",
    "DepartmentStore",
    "Erasure",
    "InvalidAddressError",
    "InvalidTierKeyError",
    "RecordErasedError",
    "RecordNotFoundError",
    "StoreConfigError",
    "StoreError",
    "StoreRegistry",
    "TierKeyConflictError",
    "TierKeyEntry",
    "TierKeyNotFoundError",
    "check_address",
    "create_store_engine",
    "default_schema",
    "default_store_path",
    "erase_record",
    "get_blob",
    "get_erasure",
    "get_tier_key",
    "list_addresses",
    "list_tier_keys",
    "put_blob",
    "put_tier_key",
    "verify_blob",
    "verify_blobs",
]
