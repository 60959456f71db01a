"""Locks that keep a record's writers and its erasure from interleaving.

Registration, recipient copies and erasure each read the store (is there a
tombstone? which keys and ciphertexts exist? does another record share this
ciphertext?) and then write. Unlocked, an erasure that commits between a
registration's reads and its inserts would let that version's tier keys in
after the tombstone, and an erasure could destroy a ciphertext another
record had just started to point at. So every such writer takes its locks
before it reads and holds them until its transaction ends:

* SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at once rather
  than at the first write. A SQLite file has one writer at a time anyway, so
  this one lock covers every record and ciphertext of the store.
* PostgreSQL: transaction-scoped advisory locks, one per record id and one
  per ciphertext address. Record locks are always taken before ciphertext
  locks, each kind in a fixed order, so two writers cannot deadlock.

A lock that cannot be had within :data:`LOCK_TIMEOUT_MS` (SQLite's busy
timeout, PostgreSQL's ``lock_timeout``) raises ``store_busy`` rather than
waiting without end.
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


@contextmanager
def records_locked(
    session: Session, record_ids: Iterable[str], *, blobs: Iterable[str] = ()
) -> Iterator[None]:
    """Hold the locks of ``record_ids`` and ciphertext addresses ``blobs`` for the block.

    On SQLite the block must start the session's transaction. The block
    commits what it writes; a transaction it leaves open (a no-op repeat, a
    refusal) is rolled back on the way out, which releases the locks.
    """
    connection = session.connection()
    try:
        if connection.dialect.name == "sqlite":
            driver = connection.connection.driver_connection
            if driver is None or driver.in_transaction:
                raise RuntimeError("records_locked must start the session's transaction on SQLite")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            _advisory(connection, record_ids, _RECORD_SEED)
            _advisory(connection, blobs, _BLOB_SEED)
    except OperationalError as exc:
        session.rollback()
        raise StoreBusyError("another writer held the store's lock too long; try again") from exc
    try:
        yield
    finally:
        if session.in_transaction():
            session.rollback()


def lock_blobs(session: Session, addresses: Iterable[str]) -> None:
    """Also take the locks of ciphertext ``addresses`` inside a :func:`records_locked` block.

    For a writer that learns which ciphertexts it touches only after its
    first reads (an erasure). On SQLite the block's write lock covers them.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    try:
        _advisory(connection, addresses, _BLOB_SEED)
    except OperationalError as exc:
        session.rollback()
        raise StoreBusyError("another writer held the store's lock too long; try again") from exc


def _advisory(connection: Connection, names: Iterable[str], seed: int) -> None:
    for name in sorted(set(names)):
        connection.execute(_ADVISORY_LOCK, {"name": name, "seed": seed})
