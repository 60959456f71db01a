"""Locks that keep a record's writers and its erasure from interleaving.

Registration, recipient copies, custodian-key rotation and erasure each read
the store (is there a tombstone? which keys and ciphertexts exist? does
another record share this ciphertext?) and then write. Unlocked, an erasure
that commits between a registration's reads and its inserts would let that
version's tier keys in after the tombstone, and an erasure could destroy a
ciphertext another record had just started to point at. So every such writer
takes its locks before it reads and holds them until its transaction ends:

* SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at once rather
  than at the first write. A SQLite file has one writer at a time anyway, so
  this one lock covers every record and ciphertext of the store.
* PostgreSQL: transaction-scoped advisory locks, one per record id and one
  per ciphertext address. Record locks are always taken before ciphertext
  locks, each kind in a fixed order, so two writers cannot deadlock.

A lock that cannot be had in time (SQLite's busy timeout,
:data:`LOCK_TIMEOUT_MS`; PostgreSQL's ``lock_timeout``, the same unless the
caller asks for less), or a deadlock PostgreSQL breaks, raises
``store_busy``: the write can be retried. Any other database error passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from gateway.store.errors import StoreBusyError

#: How long a writer waits for another's lock (SQLite's busy timeout is set to the same).
LOCK_TIMEOUT_MS: Final = 10_000
#: Seeds of the advisory-lock keys, so records, ciphertexts and other users' locks stay apart.
_RECORD_SEED: Final = 0x414C5243  # "ALRC"
_BLOB_SEED: Final = 0x414C4243  # "ALBC"
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:name, :seed))")
#: PostgreSQL: lock_not_available (lock_timeout), deadlock_detected.
_BUSY_SQLSTATES: Final = frozenset({"55P03", "40P01"})
#: SQLite primary result codes SQLITE_BUSY and SQLITE_LOCKED.
_BUSY_SQLITE_CODES: Final = frozenset({5, 6})


@contextmanager
def records_locked(
    session: Session,
    record_ids: Iterable[str],
    *,
    blobs: Iterable[str] = (),
    timeout_ms: int | None = None,
) -> Iterator[None]:
    """Hold the locks of ``record_ids`` and ciphertext addresses ``blobs`` for the block.

    On SQLite the block must start the session's transaction. The block
    commits what it writes; a transaction it leaves open (a no-op repeat, a
    refusal) is rolled back on the way out, which releases the locks.
    ``timeout_ms`` shortens PostgreSQL's lock wait for a caller that must not
    wait long (one on the event loop); SQLite keeps its busy timeout, its
    writers all being short.
    """
    connection = session.connection()
    try:
        if connection.dialect.name == "sqlite":
            driver = connection.connection.driver_connection
            if driver is None or driver.in_transaction:
                raise RuntimeError("records_locked must start the session's transaction on SQLite")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            wait = LOCK_TIMEOUT_MS if timeout_ms is None else timeout_ms
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait)}")
            _advisory(connection, record_ids, _RECORD_SEED)
            _advisory(connection, blobs, _BLOB_SEED)
        yield
    except OperationalError as exc:
        if not _busy(exc):
            raise
        session.rollback()
        raise StoreBusyError("another writer held the store's lock too long; try again") from exc
    finally:
        if session.in_transaction():
            session.rollback()


def lock_blobs(session: Session, addresses: Iterable[str]) -> None:
    """Also take the locks of ciphertext ``addresses`` inside a :func:`records_locked` block.

    For a writer that learns which ciphertexts it touches only after its
    first reads (an erasure). On SQLite the block's write lock covers them.
    A wait that times out surfaces from the block as ``store_busy``.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _advisory(connection, addresses, _BLOB_SEED)


def _advisory(connection: Connection, names: Iterable[str], seed: int) -> None:
    for name in sorted(set(names)):
        connection.execute(_ADVISORY_LOCK, {"name": name, "seed": seed})


def _busy(exc: OperationalError) -> bool:
    """Whether ``exc`` is a lock wait that timed out or a deadlock, not some other failure."""
    cause = exc.orig
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _BUSY_SQLSTATES
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _BUSY_SQLITE_CODES
