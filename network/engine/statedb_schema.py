"""The ledger store's SQLite table layout and connection settings.

:func:`configure_connection` puts a new read-write connection in WAL mode
with ``synchronous=FULL`` (why: see :mod:`network.engine.statedb`), creates
the tables if needed and refuses a file written with another
:data:`SCHEMA_VERSION`. Kept apart from the store's logic so the layout can
be read (and reviewed on a schema change) in one place; ``SCHEMA_VERSION``
stays importable from :mod:`network.engine.statedb`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from network.engine.statetypes import LedgerError

__all__ = ["SCHEMA_SQL", "SCHEMA_VERSION", "configure_connection"]

#: Version of the table layout below; stored in ``meta`` and checked on open.
SCHEMA_VERSION = 1

SCHEMA_SQL = """
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


def configure_connection(conn: sqlite3.Connection, path: Path) -> None:
    """Set WAL and ``synchronous=FULL``, create the tables, check the schema version."""
    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if str(mode).lower() != "wal":
        raise LedgerError(f"ledger database {path} cannot use WAL (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA_SQL)
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION).encode(),),
        )
    elif bytes(row[0]) != str(SCHEMA_VERSION).encode():
        raise LedgerError(
            f"ledger database {path} has schema version {bytes(row[0]).decode()!r},"
            f" this engine reads version {SCHEMA_VERSION}",
            code="ledger_schema_mismatch",
        )
