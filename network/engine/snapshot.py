"""Read-only access to the ledger store: the shared state queries and :class:`StateSnapshot`.

:class:`StateQueries` holds the SQL of every state and tx-index read; the
engine's read-write connection (:class:`~network.engine.statedb.StateDB`)
and each snapshot run the same code. A :class:`StateSnapshot` is a pooled
read-only connection holding an open read transaction, which in WAL mode
gives a consistent view of one height without blocking commits (see the
:mod:`network.engine.statedb` docstring for why that matters). They live
apart from the store because they never write and need none of its commit
or verification logic; both names stay importable from
:mod:`network.engine.statedb`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from network.engine.statetypes import (
    HistoryEntry,
    TxLocation,
    Version,
    VersionedKV,
    VersionedValue,
    key_bytes,
)

__all__ = ["StateQueries", "StateSnapshot"]


class _ReaderPool(Protocol):
    """Where a snapshot hands its connection back (the owning store)."""

    def _release_reader(self, conn: sqlite3.Connection) -> None: ...


class StateQueries:
    """State queries shared by the engine connection and snapshots.

    A mixin: the class using it provides ``_conn`` and the ``_lock`` every
    statement runs under.
    """

    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def get_state(self, namespace: str, key: str) -> VersionedValue | None:
        """Return the committed value and version of ``key``, or ``None`` if absent."""
        rows = self._all(
            "SELECT value, block_num, tx_num FROM state WHERE namespace = ? AND key = ?",
            (namespace, key_bytes(key)),
        )
        if not rows:
            return None
        value, block_num, tx_num = rows[0]
        return VersionedValue(bytes(value), Version(block_num, tx_num))

    def get_state_range(
        self, namespace: str, start_key: str, end_key: str, *, limit: int | None = None
    ) -> list[VersionedKV]:
        """Return keys in ``[start_key, end_key)`` in key order; ``end_key=''`` is open.

        Keys order by their UTF-8 bytes, which is also Unicode code point order
        and the order of Fabric's LevelDB state. This is the raw scan: the
        Fabric rule that simple-key ranges skip composite keys is applied by
        the chaincode stub, as the shim does.
        """
        sql = "SELECT key, value, block_num, tx_num FROM state WHERE namespace = ? AND key >= ?"
        params: list[object] = [namespace, key_bytes(start_key)]
        if end_key:
            sql += " AND key < ?"
            params.append(key_bytes(end_key))
        sql += " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            VersionedKV(bytes(k).decode("utf-8"), bytes(v), Version(b, t))
            for k, v, b, t in self._all(sql, params)
        ]

    def get_history(self, namespace: str, key: str) -> list[HistoryEntry]:
        """Return every committed write of ``key``, newest first (Fabric >= 2.0 order)."""
        rows = self._all(
            "SELECT block_num, tx_num, tx_id, is_delete, value, ts_seconds, ts_nanos"
            " FROM history WHERE namespace = ? AND key = ?"
            " ORDER BY block_num DESC, tx_num DESC",
            (namespace, key_bytes(key)),
        )
        return [HistoryEntry(b, t, i, bool(d), bytes(v), s, n) for b, t, i, d, v, s, n in rows]

    def _height(self) -> int:
        rows = self._all("SELECT COALESCE(MAX(number) + 1, 0) FROM blocks")
        return int(rows[0][0])

    def get_transaction(self, tx_id: str) -> TxLocation | None:
        """Return where ``tx_id`` was first committed (Fabric reports the first), or ``None``."""
        rows = self._all(
            "SELECT block_num, tx_num, validation_code FROM transactions WHERE tx_id = ?"
            " ORDER BY block_num, tx_num LIMIT 1",
            (tx_id,),
        )
        if not rows:
            return None
        block_num, tx_num, code = rows[0]
        return TxLocation(tx_id, block_num, tx_num, code)

    def tx_exists(self, tx_id: str) -> bool:
        """Whether ``tx_id`` appears in any committed block, valid or not (duplicate check)."""
        return bool(self._all("SELECT 1 FROM transactions WHERE tx_id = ? LIMIT 1", (tx_id,)))

    def committed_tx_ids(self, tx_ids: Iterable[str]) -> set[str]:
        """Those of ``tx_ids`` that appear in a committed block: :meth:`tx_exists` for many.

        One indexed lookup per id, in a single statement (the ids travel as one
        JSON array parameter).
        """
        wanted = json.dumps(sorted(set(tx_ids)))
        rows = self._all(
            "SELECT DISTINCT t.tx_id FROM json_each(?) AS j"
            " JOIN transactions AS t ON t.tx_id = j.value",
            (wanted,),
        )
        return {str(row[0]) for row in rows}


class StateSnapshot(StateQueries):
    """A consistent read-only view of the committed ledger at one height.

    It answers the state queries and the tx-index queries (:meth:`tx_exists`,
    :meth:`committed_tx_ids`, :meth:`get_transaction`) as of that height,
    without touching the engine's read-write connection or its lock.

    Obtained from :meth:`StateDB.snapshot`; use it as a context manager (or
    call :meth:`close`) so its connection returns to the pool promptly: an open
    snapshot keeps WAL checkpoints from passing it.
    """

    def __init__(self, owner: _ReaderPool, conn: sqlite3.Connection) -> None:
        self._owner = owner
        self._conn = conn
        self._lock = threading.RLock()
        self._closed = False
        conn.execute("BEGIN")
        # The first read fixes the snapshot; remember the height it shows.
        self.height = self._height()

    def close(self) -> None:
        """End the read transaction and hand the connection back."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.execute("COMMIT")
            self._owner._release_reader(self._conn)

    def __enter__(self) -> StateSnapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
