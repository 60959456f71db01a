"""MVCC and phantom-read checks of a block's endorser transactions (validation step 6).

A Fabric peer accepts a transaction's reads only if every key it read is
still at the version it read and was not written by an earlier valid
transaction of the same block (``MVCC_READ_CONFLICT``), and every range
query, re-run over committed state plus the block's earlier writes, yields
the same keys and versions (``PHANTOM_READ_CONFLICT``); range queries
recorded as a Merkle summary are compared by re-hashing the results the way
Fabric's ``RangeQueryResultsHelper`` does.

These checks live apart from :mod:`network.fabric.validator` because they
are a self-contained concern (state versions and range re-execution) with
their own hashing, separate from the signature and policy checks; the
validator imports and re-exports what it needs, so the public names stay
importable from there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as _kv_rwset_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2

from network.fabric.transactions import (
    ParsedTransaction,
    RangeQuery,
    Version,
    hashed_namespace,
)

__all__ = [
    "BlockUpdates",
    "MVCCConflict",
    "RangeLookup",
    "StateWrite",
    "VersionLookup",
    "check_reads",
    "merkle_summary",
    "range_query_valid",
    "state_writes",
]

# The generated protobuf modules ship without type stubs; use them untyped.
kv_rwset_pb2: Any = _kv_rwset_pb2
transaction_pb2: Any = _transaction_pb2

_Code: Any = transaction_pb2.TxValidationCode

#: ``(namespace, key) -> version or None`` for committed state.
VersionLookup = Callable[[str, str], Version | None]
#: ``(namespace, start, end) -> [(key, version)]`` committed keys with ``start <= key < end``,
#: ascending; ``end == ""`` means no upper bound.
RangeLookup = Callable[[str, str, str], Iterable[tuple[str, Version]]]


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A write a valid transaction commits; ``value is None`` deletes the key."""

    namespace: str
    key: str
    value: bytes | None
    version: Version


class MVCCConflict(Exception):
    """A transaction's reads are stale; ``code`` is the ``TxValidationCode`` value."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = int(_Code.Value(code))
        self.reason = reason


class BlockUpdates:
    """Writes of the block's earlier valid transactions, keyed like the state database."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], tuple[bytes | None, Version]] = {}

    def contains(self, namespace: str, key: str) -> bool:
        """Whether an earlier valid transaction of the block wrote ``key``."""
        return (namespace, key) in self.values

    def apply(self, writes: Iterable[StateWrite]) -> None:
        """Record the writes of a transaction that passed validation."""
        for w in writes:
            self.values[(w.namespace, w.key)] = (w.value, w.version)

    def in_range(self, namespace: str, start: str, end: str) -> dict[str, Version | None]:
        """Block writes in ``[start, end)``; a deleted key maps to ``None``."""
        return {
            key: (None if value is None else version)
            for (ns, key), (value, version) in self.values.items()
            if ns == namespace and key >= start and (not end or key < end)
        }


def _range_results(
    namespace: str, rq: RangeQuery, committed: RangeLookup, updates: BlockUpdates
) -> list[tuple[str, Version]]:
    # When the iterator was not exhausted, end_key is the last key the chaincode
    # saw and must be included; "\x00" appended is its immediate successor.
    end = rq.end_key + "\x00" if (rq.end_key and not rq.itr_exhausted) else rq.end_key
    merged: dict[str, Version | None] = dict(committed(namespace, rq.start_key, end))
    merged.update(updates.in_range(namespace, rq.start_key, end))
    return sorted((k, v) for k, v in merged.items() if v is not None)


def merkle_summary(
    results: Sequence[tuple[str, Version]], max_degree: int
) -> tuple[int, tuple[bytes, ...]] | None:
    """Fabric's ``RangeQueryResultsHelper`` with hashing: ``(max_level, hashes)``."""
    tree: dict[int, list[bytes]] = {}
    max_level = 1

    def update(leaf: bytes) -> None:
        nonlocal max_level
        tree.setdefault(1, []).append(leaf)
        level = 1
        while len(tree.get(level, [])) > max_degree:
            combined = hashlib.sha256(b"".join(tree.pop(level))).digest()
            level += 1
            tree.setdefault(level, []).append(combined)
            max_level = max(max_level, level)

    pending: list[tuple[str, Version]] = []

    def flush() -> None:
        reads = kv_rwset_pb2.QueryReads(
            kv_reads=[
                kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=b, tx_num=t))
                for k, (b, t) in pending
            ]
        )
        pending.clear()
        update(hashlib.sha256(reads.SerializeToString()).digest())

    for item in results:
        pending.append(item)
        if len(pending) > max_degree:
            flush()
    if not tree:
        return None
    if pending:
        flush()
    level = 1
    while level < max_level:
        hashes = tree.pop(level, [])
        if hashes:
            node = hashes[0] if len(hashes) == 1 else hashlib.sha256(b"".join(hashes)).digest()
            tree.setdefault(level + 1, []).append(node)
        level += 1
    final = tree.get(max_level, [])
    if len(final) > max_degree:
        max_level += 1
        final = [hashlib.sha256(b"".join(final)).digest()]
    return max_level, tuple(final)


def range_query_valid(
    namespace: str, rq: RangeQuery, committed: RangeLookup, updates: BlockUpdates
) -> bool:
    """Whether re-running ``rq`` now gives the results the transaction recorded."""
    results = _range_results(namespace, rq, committed, updates)
    if rq.merkle is not None:
        max_degree, max_level, hashes = rq.merkle
        return merkle_summary(results, max_degree) == (max_level, hashes)
    expected = [(r.key, r.version) for r in rq.reads or ()]
    return results == expected


def check_reads(
    tx: ParsedTransaction,
    committed_version: VersionLookup,
    committed_range: RangeLookup | None,
    updates: BlockUpdates,
) -> None:
    """Raise :class:`MVCCConflict` if any read or range query of ``tx`` is stale."""
    assert tx.action is not None
    for ns in tx.action.rwsets:
        for read in ns.reads:
            if updates.contains(ns.namespace, read.key):
                raise MVCCConflict(
                    "MVCC_READ_CONFLICT",
                    f"{ns.namespace}/{read.key!r} written earlier in this block",
                )
            if committed_version(ns.namespace, read.key) != read.version:
                raise MVCCConflict(
                    "MVCC_READ_CONFLICT",
                    f"{ns.namespace}/{read.key!r} read at "
                    f"{read.version}, committed version differs",
                )
        for rq in ns.range_queries:
            if committed_range is None:
                raise MVCCConflict("PHANTOM_READ_CONFLICT", "no range lookup to re-run range query")
            if not range_query_valid(ns.namespace, rq, committed_range, updates):
                raise MVCCConflict(
                    "PHANTOM_READ_CONFLICT",
                    f"range [{rq.start_key!r}, {rq.end_key!r}) of {ns.namespace} changed",
                )
        for coll in ns.collections:
            hashed_ns = hashed_namespace(ns.namespace, coll.collection)
            for hread in coll.reads:
                key = hread.key_hash.hex()
                if updates.contains(hashed_ns, key) or (
                    committed_version(hashed_ns, key) != hread.version
                ):
                    raise MVCCConflict("MVCC_READ_CONFLICT", f"hashed read in {coll.collection}")


def state_writes(tx: ParsedTransaction, version: Version) -> tuple[StateWrite, ...]:
    """The public and hashed-private writes ``tx`` commits, all at ``version``."""
    if tx.action is None:
        return ()
    out = []
    for ns in tx.action.rwsets:
        for w in ns.writes:
            out.append(StateWrite(ns.namespace, w.key, None if w.is_delete else w.value, version))
        for coll in ns.collections:
            hashed_ns = hashed_namespace(ns.namespace, coll.collection)
            for hw in coll.writes:
                value = None if (hw.is_delete or hw.is_purge) else hw.value_hash
                out.append(StateWrite(hashed_ns, hw.key_hash.hex(), value, version))
    return tuple(out)
