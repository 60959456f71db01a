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
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from crypto.errors import AccessLedgerError
from network.fabric.blocks import block_header_hash, compute_data_hash, parse_block
from network.fabric.errors import BlockFormatError

#: Version of the table layout below; stored in ``meta`` and checked on open.
SCHEMA_VERSION = 1
#: Fabric's ``TxValidationCode.VALID``.
VALID = 0
#: Blocks checked by ``verify="tail"``.
DEFAULT_TAIL_BLOCKS = 16
_VERIFY_BATCH = 64
_MAX_IDLE_READERS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    header_hash BLOB NOT NULL,
    bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    namespace TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    block_num INTEGER NOT NULL,
    tx_num INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    namespace TEXT NOT NULL,
    key BLOB NOT NULL,
    block_num INTEGER NOT NULL,
    tx_num INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    is_delete INTEGER NOT NULL,
    value BLOB NOT NULL,
    ts_seconds INTEGER NOT NULL,
    ts_nanos INTEGER NOT NULL,
    PRIMARY KEY (namespace, key, block_num, tx_num)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transactions (
    tx_id TEXT NOT NULL,
    block_num INTEGER NOT NULL,
    tx_num INTEGER NOT NULL,
    validation_code INTEGER NOT NULL,
    PRIMARY KEY (tx_id, block_num, tx_num)
) WITHOUT ROWID;
"""


class LedgerError(AccessLedgerError):
    """The ledger store refused an operation (bad block, bad write, I/O failure)."""

    code = "ledger_error"


def _one_line(exc: BaseException, limit: int = 120) -> str:
    """A printable, single-line, bounded rendering of ``exc`` for error messages (I7)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(exc)).strip()
    return (text[:limit] + "...") if len(text) > limit else text or type(exc).__name__


class LedgerCorruptionError(LedgerError):
    """The stored chain does not verify; the message names the block and the check."""

    code = "ledger_corrupt"


class Version(NamedTuple):
    """Fabric's key version: the height (block, transaction) of the last write.

    A tuple, so it compares equal to the ``(block_num, tx_num)`` pairs that
    :mod:`network.fabric.transactions` decodes from read sets.
    """

    block_num: int
    tx_num: int


class VersionedValue(NamedTuple):
    """A committed value and its version; unpacks as ``value, version``."""

    value: bytes
    version: Version


class VersionedKV(NamedTuple):
    """One row of a range scan."""

    key: str
    value: bytes
    version: Version


@dataclass(frozen=True)
class HistoryEntry:
    """One committed write of a key, as ``GetHistoryForKey`` reports it."""

    block_num: int
    tx_num: int
    tx_id: str
    is_delete: bool
    value: bytes
    timestamp_seconds: int
    timestamp_nanos: int


@dataclass(frozen=True)
class TxLocation:
    """Where a transaction id was committed and with which validation code."""

    tx_id: str
    block_num: int
    tx_num: int
    validation_code: int


@dataclass(frozen=True)
class TxIndexEntry:
    """One transaction of the block being committed (for the tx and history indexes).

    ``timestamp_*`` is the client's channel-header timestamp; Fabric reports it
    as the time of each history entry the transaction wrote.
    """

    tx_num: int
    tx_id: str
    validation_code: int
    timestamp_seconds: int = 0
    timestamp_nanos: int = 0


@dataclass(frozen=True)
class StateWrite:
    """A write of a *valid* transaction of the block; ``value=None`` deletes the key."""

    tx_num: int
    namespace: str
    key: str
    value: bytes | None


class StateReader(Protocol):
    """Read access to committed state, as chaincode simulation needs it."""

    def get_state(self, namespace: str, key: str) -> VersionedValue | None: ...

    def get_state_range(
        self, namespace: str, start_key: str, end_key: str, *, limit: int | None = None
    ) -> list[VersionedKV]: ...

    def get_history(self, namespace: str, key: str) -> list[HistoryEntry]: ...


def _key_bytes(key: str) -> bytes:
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LedgerError(f"key {key!r} is not valid UTF-8", code="invalid_key") from exc


class _Queries:
    """State queries shared by the engine connection and snapshots."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def get_state(self, namespace: str, key: str) -> VersionedValue | None:
        """Return the committed value and version of ``key``, or ``None`` if absent."""
        rows = self._all(
            "SELECT value, block_num, tx_num FROM state WHERE namespace = ? AND key = ?",
            (namespace, _key_bytes(key)),
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
        params: list[object] = [namespace, _key_bytes(start_key)]
        if end_key:
            sql += " AND key < ?"
            params.append(_key_bytes(end_key))
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
            (namespace, _key_bytes(key)),
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


class StateSnapshot(_Queries):
    """A consistent read-only view of the committed ledger at one height.

    It answers the state queries and the tx-index queries (:meth:`tx_exists`,
    :meth:`committed_tx_ids`, :meth:`get_transaction`) as of that height,
    without touching the engine's read-write connection or its lock.

    Obtained from :meth:`StateDB.snapshot`; use it as a context manager (or
    call :meth:`close`) so its connection returns to the pool promptly: an open
    snapshot keeps WAL checkpoints from passing it.
    """

    def __init__(self, owner: StateDB, conn: sqlite3.Connection) -> None:
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
            (mode,) = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                raise LedgerError(f"ledger database {self.path} cannot use WAL (got {mode!r})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute(
                "SELECT value FROM meta WHERE name = 'schema_version'"
            ).fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION).encode(),),
                )
            elif bytes(row[0]) != str(SCHEMA_VERSION).encode():
                raise LedgerError(
                    f"ledger database {self.path} has schema version {bytes(row[0]).decode()!r},"
                    f" this engine reads version {SCHEMA_VERSION}",
                    code="ledger_schema_mismatch",
                )

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
