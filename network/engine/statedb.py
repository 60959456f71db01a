"""SQLite storage of one channel's ledger: blocks, world state, history and tx index.

One file holds everything a peer keeps for a channel: the raw blocks (Fabric
``common.Block`` bytes, exactly as ordered and validated), the world state
(``namespace, key -> value, version``), the history index that backs
``GetHistoryForKey``, the transaction index (tx id -> block, position,
validation code) and free-form metadata. A block and everything it changes are
written by :meth:`StateDB.commit_block` in a single SQLite transaction, so a
reader or a restarted process sees either the whole block or none of it.

Durability. The database runs in WAL mode with ``synchronous=FULL``. WAL lets
readers (snapshots, exports) proceed while a block commits. ``FULL`` makes
SQLite fsync the WAL on every commit, so a block reported committed survives a
kill -9 *and* an OS crash or power loss; ``NORMAL`` would survive only the
former and could silently roll back the last blocks after a power cut. The
price is one fsync per block (not per transaction, since a block carries up to
its batch size of transactions), which the ledger benchmark measures.

Threads. An engine owns one read-write connection, created with
``check_same_thread=False`` and guarded by a re-entrant lock: every statement
runs under that lock, so the object may be shared between the event loop and
worker threads. That lock is held for a whole block commit, fsync included,
so code that must not stall behind a commit (chaincode simulation, the
endorser's duplicate-transaction check) reads from a :class:`StateSnapshot`
instead: a pooled read-only connection holding an open read transaction,
which in WAL mode gives a consistent view of one height without blocking
commits -- the equivalent of the read lock a Fabric peer holds while it
simulates. The pool of reader connections has its own lock, so taking and
returning a snapshot never waits for a commit either.

Integrity. On open, the stored chain is verified: every block's data hash,
its header hash (recomputed as Fabric does, compared with the stored one) and
its link to the previous block. A block altered on disk is reported by number.
What this check cannot see is a consistent rewrite of the *last* block by
someone able to write the file; the orderer's signature over each block,
checked by audit replay, covers that.

The value types and errors live in :mod:`network.engine.statetypes`, the
read-only side (shared queries, :class:`StateSnapshot`) in
:mod:`network.engine.snapshot` and the table layout in
:mod:`network.engine.statedb_schema`; their public names are re-exported here.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from network.engine.snapshot import StateQueries as _Queries
from network.engine.snapshot import StateSnapshot
from network.engine.statedb_schema import SCHEMA_VERSION, configure_connection
from network.engine.statetypes import (
    VALID,
    HistoryEntry,
    LedgerCorruptionError,
    LedgerError,
    StateReader,
    StateWrite,
    TxIndexEntry,
    TxLocation,
    Version,
    VersionedKV,
    VersionedValue,
)
from network.engine.statetypes import key_bytes as _key_bytes
from network.engine.statetypes import one_line as _one_line
from network.fabric.blocks import block_header_hash, compute_data_hash, parse_block
from network.fabric.errors import BlockFormatError

__all__ = [
    "DEFAULT_TAIL_BLOCKS",
    "SCHEMA_VERSION",
    "VALID",
    "HistoryEntry",
    "LedgerCorruptionError",
    "LedgerError",
    "StateDB",
    "StateReader",
    "StateSnapshot",
    "StateWrite",
    "TxIndexEntry",
    "TxLocation",
    "Version",
    "VersionedKV",
    "VersionedValue",
]

#: Blocks checked by ``verify="tail"``.
DEFAULT_TAIL_BLOCKS = 16
_VERIFY_BATCH = 64
_MAX_IDLE_READERS = 8


class StateDB(_Queries):
    """The ledger store of one channel (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        *,
        verify: Literal["full", "tail"] = "full",
        tail_blocks: int = DEFAULT_TAIL_BLOCKS,
    ) -> None:
        """Open (creating if needed) the store at ``path`` and verify its chain.

        ``verify="full"`` re-hashes every stored block; ``"tail"`` only the last
        ``tail_blocks`` and their link to the rest. Raises
        :class:`LedgerCorruptionError` naming the first bad block.
        """
        self.path = Path(path)
        self._lock = threading.RLock()
        # Guards the idle reader pool (and the closed flag snapshots check), never
        # held across SQL, so snapshots are taken and returned while a block commits.
        self._pool_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._tip_hash = b""
        self._height_cache = 0
        if verify not in ("full", "tail"):
            raise ValueError(f"unknown verify mode {verify!r}")
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger database {self.path}: {exc}") from exc
        try:
            self._configure()
            self._load_tip()
            start = 0 if verify == "full" else max(0, self._height_cache - tail_blocks)
            self.verify_chain(start)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise LedgerCorruptionError(
                f"ledger database {self.path} is damaged ({_one_line(exc)})"
            ) from exc
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------

    def _configure(self) -> None:
        with self._lock:
            configure_connection(self._conn, self.path)

    def _load_tip(self) -> None:
        with self._lock:
            count, low, high = self._conn.execute(
                "SELECT COUNT(*), MIN(number), MAX(number) FROM blocks"
            ).fetchone()
            if count and (low != 0 or high != count - 1):
                raise LedgerCorruptionError(
                    f"stored blocks are not contiguous from 0 ({count} blocks, {low}..{high})"
                )
            self._height_cache = int(count)
            if count:
                row = self._conn.execute(
                    "SELECT header_hash FROM blocks WHERE number = ?", (high,)
                ).fetchone()
                self._tip_hash = bytes(row[0])

    def close(self) -> None:
        """Close the engine connection and pooled reader connections.

        Snapshots still open keep their connection until they are closed; it
        is then closed instead of returning to the pool.
        """
        with self._lock:
            with self._pool_lock:
                if self._closed:
                    return
                self._closed = True
                readers, self._readers = self._readers, []
            for reader in readers:
                reader.close()
            self._conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- chain ---------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Number of committed blocks (the next block's number)."""
        return self._height_cache

    @property
    def tip_hash(self) -> bytes:
        """Header hash of the last committed block (``b''`` for an empty ledger)."""
        return self._tip_hash

    def get_block(self, number: int) -> bytes | None:
        """Return the raw bytes of block ``number``, or ``None`` beyond the height."""
        rows = self._all("SELECT bytes FROM blocks WHERE number = ?", (number,))
        return bytes(rows[0][0]) if rows else None

    def get_block_hash(self, number: int) -> bytes | None:
        """Return the stored header hash of block ``number``, or ``None``."""
        rows = self._all("SELECT header_hash FROM blocks WHERE number = ?", (number,))
        return bytes(rows[0][0]) if rows else None

    def iter_blocks(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(number, block bytes)`` from ``start`` up to ``end`` (exclusive).

        Blocks are fetched in small batches, each under the lock, so iterating
        a long ledger does not hold up commits.
        """
        number = start
        while end is None or number < end:
            stop = number + _VERIFY_BATCH if end is None else min(end, number + _VERIFY_BATCH)
            rows = self._all(
                "SELECT number, bytes FROM blocks WHERE number >= ? AND number < ? ORDER BY number",
                (number, stop),
            )
            if not rows:
                return
            for n, data in rows:
                yield int(n), bytes(data)
            number = int(rows[-1][0]) + 1

    def verify_chain(self, start: int = 0) -> None:
        """Check blocks ``start``.. of the stored chain; raise naming the first bad one."""
        previous = self.get_block_hash(start - 1) if start > 0 else None
        expected_number = start
        for number, data in self.iter_blocks(start):
            if number != expected_number:
                raise LedgerCorruptionError(f"block {expected_number} is missing")
            stored_hash = self.get_block_hash(number)
            try:
                block = parse_block(data)
            except BlockFormatError as exc:
                raise LedgerCorruptionError(f"block {number} is not a valid Block message") from exc
            header = block.header
            if header.number != number:
                raise LedgerCorruptionError(f"block {number}: header says number {header.number}")
            if compute_data_hash(block.data) != header.data_hash:
                raise LedgerCorruptionError(f"block {number}: data hash does not match its data")
            if block_header_hash(header) != stored_hash:
                raise LedgerCorruptionError(
                    f"block {number}: header hash differs from the stored header hash"
                )
            if previous is not None and header.previous_hash != previous:
                raise LedgerCorruptionError(
                    f"block {number}: previous_hash does not match block {number - 1}"
                )
            previous = stored_hash
            expected_number += 1

    # -- commit --------------------------------------------------------------------

    def commit_block(
        self,
        block_bytes: bytes,
        header_hash: bytes,
        *,
        transactions: Sequence[TxIndexEntry],
        writes: Iterable[StateWrite],
        metadata: Mapping[str, bytes] | None = None,
    ) -> int:
        """Store a validated block and apply its valid writes, atomically.

        ``transactions`` lists the block's transactions (position, tx id,
        validation code, timestamp); entries with an empty tx id (orderer-made
        config transactions) are not indexed, as in Fabric. ``writes`` are the
        writes of the block's *valid* transactions; a write attributed to an
        invalid or unknown transaction is refused. Within a block, later
        transactions win. Everything -- block, state, history, tx index,
        ``metadata`` -- is written in one ``BEGIN IMMEDIATE ... COMMIT``; on any
        error the transaction rolls back and nothing changes.

        Returns the committed block number.
        """
        block = self._parse_block(block_bytes, header_hash)
        number = int(block.header.number)
        entries = self._check_transactions(transactions, len(block.data.data))
        with self._lock:
            if self._closed:
                raise LedgerError("ledger database is closed")
            self._check_extends_tip(block.header)
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO blocks (number, header_hash, bytes) VALUES (?, ?, ?)",
                    (number, header_hash, block_bytes),
                )
                conn.executemany(
                    "INSERT INTO transactions (tx_id, block_num, tx_num, validation_code)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        (e.tx_id, number, e.tx_num, e.validation_code)
                        for e in entries.values()
                        if e.tx_id
                    ],
                )
                self._apply_writes(conn, number, entries, writes)
                if metadata:
                    conn.executemany(
                        "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                        list(metadata.items()),
                    )
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise LedgerError(f"committing block {number} failed: {exc}") from exc
                raise
            self._height_cache = number + 1
            self._tip_hash = header_hash
        return number

    @staticmethod
    def _parse_block(block_bytes: bytes, header_hash: bytes) -> Any:
        try:
            block = parse_block(block_bytes)
        except BlockFormatError as exc:
            raise LedgerError(f"block does not parse: {exc}", code="block_rejected") from exc
        header = block.header
        if compute_data_hash(block.data) != header.data_hash:
            raise LedgerError(
                f"block {header.number}: data hash does not match its data", code="block_rejected"
            )
        if block_header_hash(header) != header_hash:
            raise LedgerError(
                f"block {header.number}: header hash given does not match the header",
                code="block_rejected",
            )
        return block

    def _check_extends_tip(self, header: Any) -> None:
        if header.number != self._height_cache:
            raise LedgerError(
                f"block {header.number} does not extend the ledger at height {self._height_cache}",
                code="block_rejected",
            )
        if header.previous_hash != self._tip_hash:
            # For block 0 the tip hash is b"": a genesis block links to nothing.
            raise LedgerError(
                f"block {header.number}: previous_hash is not the hash of the ledger's last block",
                code="block_rejected",
            )

    @staticmethod
    def _check_transactions(
        transactions: Sequence[TxIndexEntry], tx_count: int
    ) -> dict[int, TxIndexEntry]:
        entries: dict[int, TxIndexEntry] = {}
        for entry in transactions:
            if not 0 <= entry.tx_num < tx_count:
                raise LedgerError(
                    f"transaction number {entry.tx_num} is outside the block ({tx_count} txs)",
                    code="block_rejected",
                )
            if entry.tx_num in entries:
                raise LedgerError(
                    f"transaction number {entry.tx_num} listed twice", code="block_rejected"
                )
            entries[entry.tx_num] = entry
        return entries

    @staticmethod
    def _apply_writes(
        conn: sqlite3.Connection,
        number: int,
        entries: Mapping[int, TxIndexEntry],
        writes: Iterable[StateWrite],
    ) -> None:
        # Consumed inside the open transaction: a failure part-way rolls back.
        # Applied in transaction order, so a later transaction's write or delete wins:
        # only each key's last write reaches the state table, in two batched statements.
        history: list[tuple[str, bytes, int, int, str, int, bytes, int, int]] = []
        final: dict[tuple[str, bytes], tuple[bytes | None, int]] = {}
        for write in sorted(writes, key=lambda w: w.tx_num):
            entry = entries.get(write.tx_num)
            if entry is None or entry.validation_code != VALID:
                raise LedgerError(
                    f"block {number}: write to {write.namespace}/{write.key!r} belongs to"
                    f" transaction {write.tx_num}, which is not a valid transaction of the block",
                    code="block_rejected",
                )
            key = _key_bytes(write.key)
            value = None if write.value is None else bytes(write.value)
            final[(write.namespace, key)] = (value, write.tx_num)
            history.append(
                (
                    write.namespace,
                    key,
                    number,
                    write.tx_num,
                    entry.tx_id,
                    int(value is None),
                    b"" if value is None else value,
                    entry.timestamp_seconds,
                    entry.timestamp_nanos,
                )
            )
        conn.executemany(
            "DELETE FROM state WHERE namespace = ? AND key = ?",
            [(ns, key) for (ns, key), (value, _) in final.items() if value is None],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO state (namespace, key, value, block_num, tx_num)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (ns, key, value, number, tx_num)
                for (ns, key), (value, tx_num) in final.items()
                if value is not None
            ],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO history (namespace, key, block_num, tx_num, tx_id,"
            " is_delete, value, ts_seconds, ts_nanos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            history,
        )

    # -- indexes and metadata --------------------------------------------------------

    def get_metadata(self, name: str) -> bytes | None:
        """Return a metadata value stored with :meth:`commit_block` or :meth:`set_metadata`."""
        rows = self._all("SELECT value FROM meta WHERE name = ?", (name,))
        return bytes(rows[0][0]) if rows else None

    def set_metadata(self, name: str, value: bytes) -> None:
        """Store one metadata value outside a block commit."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value)
            )

    # -- snapshots -------------------------------------------------------------------

    def snapshot(self) -> StateSnapshot:
        """Open a consistent read-only view of the current committed height.

        Never waits for a block commit in progress: the view shows the ledger
        as it was before that block, or after it.
        """
        with self._pool_lock:
            if self._closed:
                raise LedgerError("ledger database is closed")
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            try:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=10.0,
                )
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot open a ledger snapshot: {exc}") from exc
        return StateSnapshot(self, conn)

    def _release_reader(self, conn: sqlite3.Connection) -> None:
        with self._pool_lock:
            if not self._closed and len(self._readers) < _MAX_IDLE_READERS:
                self._readers.append(conn)
                return
        conn.close()
