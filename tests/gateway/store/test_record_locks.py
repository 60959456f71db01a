"""A registration and an erasure of the same record never interleave (``gateway.store.locks``).

Each test stops one writer inside its locked section, starts the other in a
thread and gives it a second to get in. Without the lock the second writer
does get in, and the test fails:

* an erasure committing between a registration's reads and its inserts would
  leave the new version's tier keys after the tombstone (an erased record
  decryptable again);
* a registration reading before an erasure commits would be stored and then
  swept up, instead of being refused as ``record_erased``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from crypto.envelope import content_address, seal_key, x25519_public_key
from gateway.store import (
    DepartmentStore,
    RecordErasedError,
    StoreBusyError,
    TierKeyEntry,
    crud,
    erasure,
    locks,
    registration,
)
from gateway.store.models import SealedTierKey, Tombstone

CUSTODIAN_PUBLIC = x25519_public_key(bytes(range(1, 33)))
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
#: How long the stopped writer waits for the other one to get in (it must not).
GRACE = 1.0


def _rows(record_id: str, version: int) -> list[tuple[bytes, TierKeyEntry]]:
    rows = []
    for tier in ("T0", "T1"):
        blob = os.urandom(64)
        sealed = seal_key(os.urandom(32), CUSTODIAN_PUBLIC)
        rows.append(
            (blob, TierKeyEntry(record_id, version, tier, sealed, content_address(blob), len(blob)))
        )
    return rows


def _keys_of(store: DepartmentStore, record_id: str) -> int:
    with store.session() as session:
        statement = select(func.count()).select_from(SealedTierKey)
        return int(session.exec(statement.where(SealedTierKey.record_id == record_id)).one())


def _tombstone(store: DepartmentStore, record_id: str) -> bool:
    with store.session() as session:
        return session.get(Tombstone, record_id) is not None


class _Other:
    """The other writer, run in a thread; its outcome (value or exception) is kept."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.outcome: object = None
        self._work = work
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome = self._work()
        except Exception as exc:  # the outcome under test may be an error
            self.outcome = exc

    def start_and_wait(self) -> bool:
        """Start it and wait up to GRACE; whether it finished in that time."""
        self._thread.start()
        self._thread.join(GRACE)
        return not self._thread.is_alive()

    def finish(self) -> object:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the other writer never finished"
        return self.outcome


def _start_after_registration_reads(other: _Other, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make the next registration start ``other`` once it has read, and wait GRACE for it.

    The list it returns gets, per registration, whether ``other`` finished in that time.
    """
    finished_early: list[bool] = []
    read = registration._KnownRows.read

    def read_then_let_the_other_try(connection: Any, tiers: Any) -> Any:
        known = read(connection, tiers)
        finished_early.append(other.start_and_wait())
        return known

    monkeypatch.setattr(registration._KnownRows, "read", read_then_let_the_other_try)
    return finished_early


def test_an_erasure_waits_for_a_registration_that_has_read(
    store: DepartmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_record_tiers(_rows("rp-race-1", 1))
    other = _Other(
        lambda: store.erase_record(record_id="rp-race-1", erased_by="registrar", now=NOW)
    )
    finished_early = _start_after_registration_reads(other, monkeypatch)
    version_2 = _rows("rp-race-1", 2)
    assert store.put_record_tiers(version_2) == [entry for _, entry in version_2]

    assert finished_early == [False], "the erasure ran inside the registration's transaction"
    done = other.finish()
    assert isinstance(done, erasure.Erasure)
    assert done.tier_keys_destroyed == 4  # both versions: version 2 was in before the erasure
    assert _tombstone(store, "rp-race-1")
    assert _keys_of(store, "rp-race-1") == 0


def test_a_registration_waits_for_an_erasure_and_is_refused(
    store: DepartmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_record_tiers(_rows("rp-race-2", 1))
    other = _Other(lambda: store.put_record_tiers(_rows("rp-race-2", 2)))
    finished_early: list[bool] = []
    tombstone_of = erasure.tombstone_of

    def look_then_let_the_registration_try(session: Any, record_id: str) -> Any:
        stone = tombstone_of(session, record_id)
        if not finished_early:
            finished_early.append(other.start_and_wait())
        return stone

    monkeypatch.setattr(erasure, "tombstone_of", look_then_let_the_registration_try)
    done = store.erase_record(record_id="rp-race-2", erased_by="registrar", now=NOW)

    assert finished_early == [False], "the registration ran inside the erasure's transaction"
    assert done.tier_keys_destroyed == 2
    assert isinstance(other.finish(), RecordErasedError)
    assert _keys_of(store, "rp-race-2") == 0


def test_a_repeated_or_refused_put_ends_its_transaction(store: DepartmentStore) -> None:
    # One session, several locked calls in turn (as registration's one-by-one fallback makes):
    # a call that writes nothing must not leave its transaction, and so its lock, open.
    rows = _rows("rp-race-3", 1)
    store.put_record_tiers(rows)
    with store.session() as session:
        for _ in range(2):
            for blob, entry in rows:
                assert (
                    crud.put_tier_key(
                        session=session,
                        record_id=entry.record_id,
                        version=entry.version,
                        tier=entry.tier,
                        sealed_key=entry.sealed_key,
                        address=entry.address,
                        size=len(blob),
                    )
                    == entry
                )
        erasure.erase_record(session=session, record_id="rp-race-3", erased_by="r", now=NOW)
        blob, entry = rows[0]
        for _ in range(2):
            with pytest.raises(RecordErasedError):
                crud.put_tier_key(
                    session=session,
                    record_id=entry.record_id,
                    version=2,
                    tier=entry.tier,
                    sealed_key=entry.sealed_key,
                    address=entry.address,
                    size=len(blob),
                )
        assert not session.in_transaction()


def test_an_erasure_keeps_a_ciphertext_another_record_is_taking_up(
    store: DepartmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Record B stores the very ciphertext record A already uses. An erasure of A that decided
    # "not shared" while B was storing would destroy B's ciphertext under A's name.
    blob = os.urandom(64)
    address = content_address(blob)

    def row(record_id: str) -> tuple[bytes, TierKeyEntry]:
        sealed = seal_key(os.urandom(32), CUSTODIAN_PUBLIC)
        return blob, TierKeyEntry(record_id, 1, "T0", sealed, address, len(blob))

    store.put_record_tiers([row("rp-shared-a")])
    other = _Other(
        lambda: store.erase_record(record_id="rp-shared-a", erased_by="registrar", now=NOW)
    )
    finished_early = _start_after_registration_reads(other, monkeypatch)
    store.put_record_tiers([row("rp-shared-b")])
    monkeypatch.undo()

    assert finished_early == [False], "the erasure ran inside the registration's transaction"
    done = other.finish()
    assert isinstance(done, erasure.Erasure)
    assert done.blobs_destroyed == 0  # B's key shares it now
    assert store.get_blob(address) == blob
    assert _keys_of(store, "rp-shared-b") == 1


def test_a_lock_held_too_long_is_store_busy(
    open_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "LOCK_TIMEOUT_MS", 300)
    store = open_store("Housing")  # opened after the patch: SQLite's busy timeout is set at connect
    store.put_record_tiers(_rows("rp-busy", 1))
    outcome: list[object] = []
    read = registration._KnownRows.read

    def read_then_erase_meanwhile(connection: Any, tiers: Any) -> Any:
        known = read(connection, tiers)
        try:
            store.erase_record(record_id="rp-busy", erased_by="registrar", now=NOW)
        except StoreBusyError as exc:
            outcome.append(exc)
        return known

    monkeypatch.setattr(registration._KnownRows, "read", read_then_erase_meanwhile)
    store.put_record_tiers(_rows("rp-busy", 2))  # holds the lock while the erasure waits
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreBusyError)
    assert outcome[0].code == "store_busy"
    assert not _tombstone(store, "rp-busy")
    assert _keys_of(store, "rp-busy") == 4


# PostgreSQL only: a SQLite writer holds the whole database's lock from its first statement.
@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_row_lock_met_inside_the_block_is_store_busy_too(store: DepartmentStore) -> None:
    # Not only the advisory locks: a row another transaction holds (here, an uncommitted
    # update of one of the record's keys) makes the erasure's DELETE wait, and time out.
    store.put_record_tiers(_rows("rp-rowlock", 1))
    with store.session() as holder:
        holder.exec(
            update(SealedTierKey)
            .where(col(SealedTierKey.record_id) == "rp-rowlock")
            .values(key_id=None)
        )
        with pytest.raises(StoreBusyError):
            store.erase_record(
                record_id="rp-rowlock", erased_by="registrar", now=NOW, lock_timeout_ms=200
            )
        holder.rollback()
    assert not _tombstone(store, "rp-rowlock")
    assert store.erase_record(record_id="rp-rowlock", erased_by="registrar", now=NOW)


def test_other_database_errors_are_not_store_busy(store: DepartmentStore) -> None:
    with store.session() as session:
        with pytest.raises(DBAPIError), locks.records_locked(session, ["rp-x"]):
            session.connection().exec_driver_sql("SELECT * FROM no_such_table")
        assert not session.in_transaction()
