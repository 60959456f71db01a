"""Fabric read-write sets: the typed view of a transaction's ``TxReadWriteSet``.

:func:`parse_rwset` decodes the ``results`` of a ``ChaincodeAction`` into
per-namespace reads (with the versions the endorser read), range queries,
writes, metadata writes and private-collection hashes: what MVCC validation
(:mod:`network.fabric.mvcc`) and state replay consume. A malformed set raises
:class:`~network.fabric.errors.TransactionFormatError` with ``BAD_RWSET``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabric_protos.ledger.rwset import rwset_pb2 as _rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as _kv_rwset_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf.message import DecodeError

from network.fabric.errors import TransactionFormatError

# The generated protobuf modules ship without type stubs; use them untyped.
rwset_pb2: Any = _rwset_pb2
kv_rwset_pb2: Any = _kv_rwset_pb2
_Code: Any = _transaction_pb2.TxValidationCode

#: ``(block_num, tx_num)``: the height at which a key was last written.
Version = tuple[int, int]


def decode_message(message: Any, data: bytes, what: str, code: str) -> Any:
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise TransactionFormatError(
            f"cannot decode {what}: {exc}", validation_code=_Code.Value(code)
        ) from exc
    return message


@dataclass(frozen=True, slots=True)
class KVRead:
    """A public read and the version the simulation saw (``None``: key absent)."""

    key: str
    version: Version | None


@dataclass(frozen=True, slots=True)
class KVWrite:
    """A public write; ``is_delete`` writes carry an empty value."""

    key: str
    value: bytes
    is_delete: bool


@dataclass(frozen=True, slots=True)
class KVMetadataWrite:
    """A key-metadata write (e.g. a state-based ``VALIDATION_PARAMETER``)."""

    key: str
    entries: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class RangeQuery:
    """A range query recorded during simulation, for phantom-read validation.

    ``reads`` holds the raw results; Fabric stores a Merkle summary instead
    when the result set is large, and then ``merkle`` holds
    ``(max_degree, max_level, max_level_hashes)``.
    """

    start_key: str
    end_key: str
    itr_exhausted: bool
    reads: tuple[KVRead, ...] | None
    merkle: tuple[int, int, tuple[bytes, ...]] | None


@dataclass(frozen=True, slots=True)
class HashedRead:
    """A read in a private collection, known only by the SHA-256 of its key."""

    key_hash: bytes
    version: Version | None


@dataclass(frozen=True, slots=True)
class HashedWrite:
    """A write in a private collection: hashes of the key and of the value."""

    key_hash: bytes
    value_hash: bytes
    is_delete: bool
    is_purge: bool


@dataclass(frozen=True, slots=True)
class CollectionRWSet:
    """The hashed read-write set of one private data collection."""

    collection: str
    reads: tuple[HashedRead, ...]
    writes: tuple[HashedWrite, ...]
    metadata_writes: tuple[KVMetadataWrite, ...]
    pvt_rwset_hash: bytes


@dataclass(frozen=True, slots=True)
class NamespaceRWSet:
    """Reads, range queries and writes of one chaincode namespace."""

    namespace: str
    reads: tuple[KVRead, ...]
    range_queries: tuple[RangeQuery, ...]
    writes: tuple[KVWrite, ...]
    metadata_writes: tuple[KVMetadataWrite, ...]
    collections: tuple[CollectionRWSet, ...]

    @property
    def has_writes(self) -> bool:
        """Whether this namespace is written (Fabric then checks its endorsement policy)."""
        return bool(
            self.writes
            or self.metadata_writes
            or any(c.writes or c.metadata_writes for c in self.collections)
        )


def hashed_namespace(namespace: str, collection: str) -> str:
    """Fabric's state-database namespace for a private collection's hashed keys.

    Hashed state is keyed by this namespace and the hex of the key hash.
    """
    return f"{namespace}$$h{collection}"


def _version(read: Any) -> Version | None:
    if not read.HasField("version"):
        return None
    return (int(read.version.block_num), int(read.version.tx_num))


def _kv_reads(reads: Any) -> tuple[KVRead, ...]:
    return tuple(KVRead(str(r.key), _version(r)) for r in reads)


def _metadata_writes(entries: Any, hashed: bool) -> tuple[KVMetadataWrite, ...]:
    out = []
    for mw in entries:
        key = bytes(mw.key_hash).hex() if hashed else str(mw.key)
        out.append(KVMetadataWrite(key, tuple((str(e.name), bytes(e.value)) for e in mw.entries)))
    return tuple(out)


def _range_query(rq: Any) -> RangeQuery:
    reads = merkle = None
    if rq.HasField("raw_reads"):
        reads = _kv_reads(rq.raw_reads.kv_reads)
    elif rq.HasField("reads_merkle_hashes"):
        m = rq.reads_merkle_hashes
        merkle = (int(m.max_degree), int(m.max_level), tuple(bytes(h) for h in m.max_level_hashes))
    else:
        reads = ()
    return RangeQuery(str(rq.start_key), str(rq.end_key), bool(rq.itr_exhausted), reads, merkle)


def _collection(coll: Any) -> CollectionRWSet:
    hashed = decode_message(
        kv_rwset_pb2.HashedRWSet(), coll.hashed_rwset, "hashed rwset", "BAD_RWSET"
    )
    return CollectionRWSet(
        collection=str(coll.collection_name),
        reads=tuple(HashedRead(bytes(r.key_hash), _version(r)) for r in hashed.hashed_reads),
        writes=tuple(
            HashedWrite(bytes(w.key_hash), bytes(w.value_hash), bool(w.is_delete), bool(w.is_purge))
            for w in hashed.hashed_writes
        ),
        metadata_writes=_metadata_writes(hashed.metadata_writes, hashed=True),
        pvt_rwset_hash=bytes(coll.pvt_rwset_hash),
    )


def parse_rwset(results: bytes) -> tuple[NamespaceRWSet, ...]:
    """Decode a ``TxReadWriteSet`` (the ``results`` of a ``ChaincodeAction``)."""
    txrw = decode_message(rwset_pb2.TxReadWriteSet(), results, "read-write set", "BAD_RWSET")
    out = []
    for ns in txrw.ns_rwset:
        kv = decode_message(kv_rwset_pb2.KVRWSet(), ns.rwset, "KV read-write set", "BAD_RWSET")
        out.append(
            NamespaceRWSet(
                namespace=str(ns.namespace),
                reads=_kv_reads(kv.reads),
                range_queries=tuple(_range_query(rq) for rq in kv.range_queries_info),
                writes=tuple(
                    KVWrite(str(w.key), bytes(w.value), bool(w.is_delete)) for w in kv.writes
                ),
                metadata_writes=_metadata_writes(kv.metadata_writes, hashed=False),
                collections=tuple(_collection(c) for c in ns.collection_hashed_rwset),
            )
        )
    return tuple(out)
