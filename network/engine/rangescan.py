"""Range queries as the simulator records them, and the shim's iterators over their rows.

A chaincode's range or partial-composite-key query is a :class:`RangeScan`
that reads committed state in batches, as a Fabric peer streams query
results, and remembers what it handed out: the rows read (with their
versions) and where it stopped, which become the transaction's
``RangeQueryInfo`` for MVCC validation (phantom reads). The iterators are
the fabric-chaincode-python shim's types, filled from those batches without
any peer round trip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from fabric_chaincode_python.fabric_shim import iterators as _shim_iterators
from fabric_protos.ledger.queryresult import kv_query_result_pb2 as _kv_query_result_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as _kv_rwset_pb2

from network.engine.statedb import StateReader, Version

kv_query_result_pb2: Any = _kv_query_result_pb2
kv_rwset_pb2: Any = _kv_rwset_pb2

#: Rows fetched per round trip, as a Fabric peer batches query results.
QUERY_BATCH = 100
_MIN_RUNE = "\x00"

__all__ = [
    "QUERY_BATCH",
    "HistoryQueryIterator",
    "LocalIterator",
    "RangeScan",
    "StateQueryIterator",
]


class RangeScan:
    """One range query as the simulator records it (Fabric's ``RangeQueryInfo``).

    ``end_key`` is the last key handed out while the scan is not exhausted
    (the validator re-reads ``[start, end_key]``) and the requested end once
    it is (``[start, end)``).
    """

    def __init__(self, state: StateReader, namespace: str, start_key: str, end_key: str) -> None:
        self._state = state
        self._namespace = namespace
        self.start_key = start_key
        self.requested_end = end_key
        self.end_key = end_key
        self.exhausted = False
        self.reads: list[tuple[str, Version]] = []
        self._next_start = start_key

    def _record(self, rows: Sequence[Any]) -> list[Any]:
        for row in rows:
            self.reads.append((row.key, row.version))
        return [
            kv_query_result_pb2.KV(namespace=self._namespace, key=r.key, value=r.value)
            for r in rows
        ]

    def fetch(self, limit: int = QUERY_BATCH) -> list[Any]:
        """Read up to ``limit`` further rows; mark the scan exhausted when the range ends."""
        if self.exhausted:
            return []
        rows = self._state.get_state_range(
            self._namespace, self._next_start, self.requested_end, limit=limit
        )
        if len(rows) < limit:
            self.exhausted = True
            self.end_key = self.requested_end
        else:
            self.end_key = rows[-1].key
            # The smallest key after k is k + U+0000.
            self._next_start = rows[-1].key + _MIN_RUNE
        return self._record(rows)

    def fetch_page(self, page_size: int) -> tuple[list[Any], str]:
        """Read one page; return its rows and the bookmark of the next page ('' if none)."""
        rows = self._state.get_state_range(
            self._namespace, self.start_key, self.requested_end, limit=page_size + 1
        )
        page, rest = rows[:page_size], rows[page_size:]
        if rest:
            self.end_key = page[-1].key
            bookmark = rest[0].key
        else:
            self.exhausted = True
            bookmark = ""
        return self._record(page), bookmark

    def to_proto(self) -> Any:
        reads = [
            kv_rwset_pb2.KVRead(
                key=key, version=kv_rwset_pb2.Version(block_num=v.block_num, tx_num=v.tx_num)
            )
            for key, v in self.reads
        ]
        return kv_rwset_pb2.RangeQueryInfo(
            start_key=self.start_key,
            end_key=self.end_key,
            itr_exhausted=self.exhausted,
            raw_reads=kv_rwset_pb2.QueryReads(kv_reads=reads),
        )


class LocalIterator:
    """Async iteration over buffered results, refilled on demand (no peer round trips)."""

    metadata: Any = None

    def __init__(self, first: Sequence[Any], more: Callable[[], list[Any]] | None) -> None:
        self._buffer: deque[Any] = deque(first)
        self._more = more
        self._closed = False

    def __aiter__(self) -> LocalIterator:
        return self

    async def __anext__(self) -> Any:
        if not self._buffer and self._more is not None and not self._closed:
            batch = self._more()
            if batch:
                self._buffer.extend(batch)
            else:
                self._more = None
        if self._closed or not self._buffer:
            self._closed = True
            raise StopAsyncIteration
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop iterating; safe to call more than once."""
        self._closed = True
        self._buffer.clear()


class StateQueryIterator(LocalIterator, _shim_iterators.StateQueryIterator):  # type: ignore[misc]
    """Yields ``queryresult.KV`` records of a range or partial-composite-key query.

    For paginated queries, ``metadata`` is the ``QueryResponseMetadata``
    (``fetched_records_count``, ``bookmark``) a Fabric peer returns.
    """


class HistoryQueryIterator(LocalIterator, _shim_iterators.HistoryQueryIterator):  # type: ignore[misc]
    """Yields ``queryresult.KeyModification`` records, newest first."""
