"""StateDB: commits, reads, history, tx index, atomicity, chain verification on open."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from network.engine.statedb import (
    LedgerCorruptionError,
    LedgerError,
    StateDB,
    StateWrite,
    TxIndexEntry,
    Version,
)
from network.fabric.blocks import block_header_hash, new_block, parse_block
from tests.fabric_fixtures import FABRIC_FIXTURES
from tests.network.engine.samples.harness import commit

FIXTURES = FABRIC_FIXTURES
MVCC_READ_CONFLICT = 11


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(tmp_path / "ledger.db") as store:
        yield store


def test_commit_and_read_back_state_versions_and_blocks(db: StateDB) -> None:
    assert db.height == 0
    assert db.get_state("cc", "a") is None
    commit(db, [{"cc": {"a": b"1", "b": b"2"}}, {"cc": {"a": b"3"}}])

    assert db.height == 1
    a = db.get_state("cc", "a")
    assert a is not None
    assert a.value == b"3"
    assert a.version == Version(0, 1)  # the later transaction of the block wins
    b = db.get_state("cc", "b")
    assert b is not None
    assert (b.value, b.version) == (b"2", Version(0, 0))
    assert db.get_state("other", "a") is None  # namespaces are separate

    raw = db.get_block(0)
    assert raw is not None
    block = parse_block(raw)
    assert block.header.number == 0
    assert db.tip_hash == block_header_hash(block.header) == db.get_block_hash(0)
    assert db.get_block(1) is None

    commit(db, [{"cc": {"a": None}}])
    assert db.get_state("cc", "a") is None
    assert parse_block(db.get_block(1) or b"").header.previous_hash == db.get_block_hash(0)


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with StateDB(path) as store:
        commit(store, [{"cc": {"k": b"v"}}])
        commit(store, [{"cc": {"k": b"w"}}])
        tip = store.tip_hash
    with StateDB(path) as store:
        assert store.height == 2
        assert store.tip_hash == tip
        found = store.get_state("cc", "k")
        assert found is not None
        assert (found.value, found.version) == (b"w", Version(1, 0))


def test_range_start_inclusive_end_exclusive_and_open_end(db: StateDB) -> None:
    keys = ["a", "b", "b1", "c", "d", "é", "z"]
    commit(db, [{"cc": {k: k.encode() for k in keys}}])

    def scan(start: str, end: str, limit: int | None = None) -> list[str]:
        return [kv.key for kv in db.get_state_range("cc", start, end, limit=limit)]

    assert scan("b", "d") == ["b", "b1", "c"]
    assert scan("b", "") == ["b", "b1", "c", "d", "z", "é"]  # code point order: z < é
    assert scan("", "") == sorted(keys)
    assert scan("b", "b") == []
    assert scan("a", "", limit=2) == ["a", "b"]
    row = db.get_state_range("cc", "c", "d")[0]
    assert (row.value, row.version) == (b"c", Version(0, 0))


def test_composite_keys_sort_before_simple_keys(db: StateDB) -> None:
    composite = "\x00owner~id\x00alice\x00asset1\x00"
    commit(db, [{"cc": {"asset1": b"x", composite: b"\x00"}}])
    # A raw scan from '' sees the composite key; the stub's simple ranges start at '\x01'.
    assert [kv.key for kv in db.get_state_range("cc", "", "")] == [composite, "asset1"]
    assert [kv.key for kv in db.get_state_range("cc", "\x01", "")] == ["asset1"]


def test_history_is_newest_first_with_deletes_and_tx_ids(db: StateDB) -> None:
    commit(db, [{"cc": {"k": b"v1"}}], tx_ids=["t1"])
    commit(db, [{"cc": {"other": b"x"}}, {"cc": {"k": b"v2"}}], tx_ids=["t2", "t3"])
    commit(db, [{"cc": {"k": None}}], tx_ids=["t4"])
    commit(db, [{"cc": {"k": b"v3"}}], tx_ids=["t5"])

    history = db.get_history("cc", "k")
    assert [(h.tx_id, h.block_num, h.tx_num, h.is_delete, h.value) for h in history] == [
        ("t5", 3, 0, False, b"v3"),
        ("t4", 2, 0, True, b""),
        ("t3", 1, 1, False, b"v2"),
        ("t1", 0, 0, False, b"v1"),
    ]
    assert all(h.timestamp_seconds > 0 for h in history)
    assert db.get_history("cc", "missing") == []


def test_invalid_transactions_are_indexed_but_change_nothing(db: StateDB) -> None:
    commit(db, [{"cc": {"k": b"v1"}}], tx_ids=["t1"])
    commit(
        db,
        [{"cc": {"k": b"bad"}}, {"cc": {"j": b"ok"}}],
        tx_ids=["t2", "t3"],
        codes=[MVCC_READ_CONFLICT, 0],
    )
    found = db.get_state("cc", "k")
    assert found is not None
    assert found.value == b"v1"
    assert [h.tx_id for h in db.get_history("cc", "k")] == ["t1"]
    location = db.get_transaction("t2")
    assert location is not None
    assert (location.block_num, location.tx_num, location.validation_code) == (1, 0, 11)
    assert db.tx_exists("t2")
    assert db.tx_exists("t3")
    assert not db.tx_exists("t9")


def test_later_transactions_win_over_deletes_and_writes_in_one_block(db: StateDB) -> None:
    commit(db, [{"cc": {"gone": b"0", "back": b"0"}}], tx_ids=["t0"])
    commit(
        db,
        [
            {"cc": {"gone": b"1", "back": None, "new": b"1"}},
            {"cc": {"gone": None, "back": b"2"}},
            {"cc": {"new": b"3"}},
        ],
        tx_ids=["t1", "t2", "t3"],
    )
    assert db.get_state("cc", "gone") is None
    back = db.get_state("cc", "back")
    assert back is not None
    assert (back.value, back.version) == (b"2", Version(1, 1))
    new = db.get_state("cc", "new")
    assert new is not None
    assert (new.value, new.version) == (b"3", Version(1, 2))
    # History keeps every write, not only the last one of the block.
    assert [(h.tx_id, h.is_delete, h.value) for h in db.get_history("cc", "gone")] == [
        ("t2", True, b""),
        ("t1", False, b"1"),
        ("t0", False, b"0"),
    ]
    assert [(h.tx_id, h.is_delete) for h in db.get_history("cc", "back")] == [
        ("t2", False),
        ("t1", True),
        ("t0", False),
    ]


def test_committed_tx_ids_is_tx_exists_for_many(db: StateDB) -> None:
    commit(db, [{}, {}], tx_ids=["t1", "t2"], codes=[0, MVCC_READ_CONFLICT])
    commit(db, [{}], tx_ids=["t1"], codes=[9])
    odd = "q'uo\"te\\"
    commit(db, [{}], tx_ids=[odd])
    asked = ["t1", "t2", "t3", "t1", odd, "", "T1"]
    assert db.committed_tx_ids(asked) == {"t1", "t2", odd}
    assert db.committed_tx_ids(asked) == {t for t in asked if db.tx_exists(t)}
    assert db.committed_tx_ids([]) == set()
    with db.snapshot() as view:
        assert view.committed_tx_ids(asked) == {"t1", "t2", odd}


def test_refuses_writes_of_an_invalid_transaction(db: StateDB) -> None:
    block = new_block(0, b"", [b"env"])
    with pytest.raises(LedgerError, match="not a valid transaction"):
        db.commit_block(
            block.SerializeToString(),
            block_header_hash(block.header),
            transactions=[TxIndexEntry(0, "t1", MVCC_READ_CONFLICT)],
            writes=[StateWrite(0, "cc", "k", b"v")],
        )
    assert db.height == 0
    assert db.get_state("cc", "k") is None
    assert not db.tx_exists("t1")


def test_duplicate_tx_id_lookup_reports_first_occurrence(db: StateDB) -> None:
    commit(db, [{"cc": {"k": b"1"}}], tx_ids=["dup"])
    commit(db, [{}], tx_ids=["dup"], codes=[9])  # DUPLICATE_TXID
    location = db.get_transaction("dup")
    assert location is not None
    assert (location.block_num, location.validation_code) == (0, 0)


def test_empty_tx_ids_are_not_indexed(db: StateDB) -> None:
    commit(db, [{}], tx_ids=[""])
    assert not db.tx_exists("")


def test_commit_is_atomic_when_writes_fail_midway(db: StateDB) -> None:
    commit(db, [{"cc": {"k": b"before"}}])
    height, tip = db.height, db.tip_hash
    block = new_block(height, tip, [b"env0", b"env1"])

    def failing_writes() -> Iterator[StateWrite]:
        yield StateWrite(0, "cc", "k", b"after")
        yield StateWrite(1, "cc", "new", b"x")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        db.commit_block(
            block.SerializeToString(),
            block_header_hash(block.header),
            transactions=[TxIndexEntry(0, "ta", 0), TxIndexEntry(1, "tb", 0)],
            writes=failing_writes(),
            metadata={"savepoint": b"1"},
        )
    assert (db.height, db.tip_hash) == (height, tip)
    assert db.get_block(height) is None
    found = db.get_state("cc", "k")
    assert found is not None
    assert found.value == b"before"
    assert db.get_state("cc", "new") is None
    assert len(db.get_history("cc", "k")) == 1
    assert not db.tx_exists("ta")
    assert db.get_metadata("savepoint") is None

    # The same block commits cleanly afterwards.
    db.commit_block(
        block.SerializeToString(),
        block_header_hash(block.header),
        transactions=[TxIndexEntry(0, "ta", 0), TxIndexEntry(1, "tb", 0)],
        writes=[StateWrite(0, "cc", "k", b"after")],
        metadata={"savepoint": b"1"},
    )
    assert db.height == height + 1
    assert db.get_metadata("savepoint") == b"1"


def test_commit_is_atomic_on_a_database_error(db: StateDB) -> None:
    block = new_block(0, b"", [b"env0"])
    bad = StateWrite(0, None, "k", b"v")  # type: ignore[arg-type]  # NOT NULL violation
    with pytest.raises(LedgerError, match="committing block 0 failed"):
        db.commit_block(
            block.SerializeToString(),
            block_header_hash(block.header),
            transactions=[TxIndexEntry(0, "t", 0)],
            writes=[StateWrite(0, "cc", "a", b"1"), bad],
        )
    assert db.height == 0
    assert db.get_block(0) is None
    assert db.get_state("cc", "a") is None
    assert not db.tx_exists("t")


def test_commit_rejects_blocks_that_do_not_extend_the_chain(db: StateDB) -> None:
    commit(db, [{"cc": {"k": b"v"}}])
    good = new_block(1, db.tip_hash, [b"env"])

    def attempt(block: object, header_hash: bytes | None = None, match: str = "") -> None:
        with pytest.raises(LedgerError, match=match) as info:
            db.commit_block(
                block.SerializeToString(),  # type: ignore[attr-defined]
                header_hash or block_header_hash(block.header),  # type: ignore[attr-defined]
                transactions=[],
                writes=[],
            )
        assert info.value.code == "block_rejected"

    attempt(new_block(2, db.tip_hash, [b"env"]), match="does not extend")
    attempt(new_block(1, b"\x01" * 32, [b"env"]), match="previous_hash")
    attempt(good, header_hash=b"\x00" * 32, match="header hash")
    tampered = new_block(1, db.tip_hash, [b"env"])
    tampered.data.data[0] = b"other"
    attempt(tampered, match="data hash")
    assert db.height == 1


def test_snapshot_sees_one_height_while_commits_continue(db: StateDB) -> None:
    commit(db, [{"cc": {"a": b"1", "b": b"1"}}])
    with db.snapshot() as view:
        assert view.height == 1
        commit(db, [{"cc": {"a": b"2", "c": b"2"}}])
        found = view.get_state("cc", "a")
        assert found is not None
        assert found.value == b"1"
        assert [kv.key for kv in view.get_state_range("cc", "", "")] == ["a", "b"]
        assert len(view.get_history("cc", "a")) == 1
    latest = db.get_state("cc", "a")
    assert latest is not None
    assert latest.value == b"2"
    with db.snapshot() as view:
        assert view.height == 2
        assert [kv.key for kv in view.get_state_range("cc", "", "")] == ["a", "b", "c"]


def test_snapshots_answer_tx_index_queries_at_their_height(db: StateDB) -> None:
    commit(db, [{"cc": {"a": b"1"}}], tx_ids=["t1"])
    with db.snapshot() as view:
        commit(db, [{"cc": {"a": b"2"}}], tx_ids=["t2"])
        assert view.tx_exists("t1")
        assert not view.tx_exists("t2")  # committed after the snapshot was taken
        location = view.get_transaction("t1")
        assert location is not None
        assert (location.block_num, location.tx_num, location.validation_code) == (0, 0, 0)
        assert view.get_transaction("t2") is None
    assert db.tx_exists("t2")
    with db.snapshot() as view:
        assert view.tx_exists("t2")


def test_snapshots_are_taken_and_returned_while_a_block_commits(db: StateDB) -> None:
    """Endorsement reads never wait for a commit (which holds the write lock through fsync)."""
    commit(db, [{"cc": {"a": b"1"}}], tx_ids=["t1"])
    inside_commit = threading.Event()
    finish_commit = threading.Event()

    def paused_writes() -> Iterator[StateWrite]:
        yield StateWrite(0, "cc", "a", b"2")
        inside_commit.set()  # BEGIN IMMEDIATE ran and the write lock is held
        finish_commit.wait(10)

    block = new_block(db.height, db.tip_hash, [b"env"])
    committer = threading.Thread(
        target=db.commit_block,
        args=(block.SerializeToString(), block_header_hash(block.header)),
        kwargs={"transactions": [TxIndexEntry(0, "t2", 0)], "writes": paused_writes()},
    )
    committer.start()
    try:
        assert inside_commit.wait(10)
        seen: list[object] = []

        def read() -> None:
            for _ in range(3):  # taken, used and handed back to the pool, repeatedly
                with db.snapshot() as view:
                    found = view.get_state("cc", "a")
                    seen.append((view.height, view.tx_exists("t1"), view.tx_exists("t2")))
                    seen.append(found.value if found else None)

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "a snapshot waited for the commit in progress"
        assert seen == [(1, True, False), b"1"] * 3
    finally:
        finish_commit.set()
        committer.join(10)
    assert db.height == 2
    with db.snapshot() as view:
        assert view.tx_exists("t2")


def test_metadata_round_trip(db: StateDB) -> None:
    db.set_metadata("channel", b"mychannel")
    assert db.get_metadata("channel") == b"mychannel"
    assert db.get_metadata("absent") is None


def _ledger_with_blocks(path: Path, count: int) -> None:
    with StateDB(path) as store:
        for n in range(count):
            commit(store, [{"cc": {f"k{n}": f"marker-{n:04d}-payload".encode()}}], tx_ids=[f"t{n}"])


def test_block_altered_through_sql_is_named_on_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger_with_blocks(path, 6)
    raw = sqlite3.connect(path)
    (data,) = raw.execute("SELECT bytes FROM blocks WHERE number = 3").fetchone()
    block = parse_block(data)
    block.data.data[0] = b"forged envelope"
    raw.execute("UPDATE blocks SET bytes = ? WHERE number = 3", (block.SerializeToString(),))
    raw.commit()
    raw.close()
    with pytest.raises(LedgerCorruptionError, match="block 3: data hash"):
        StateDB(path)


def test_rehashed_forgery_breaks_the_link_to_the_next_block(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger_with_blocks(path, 5)
    raw = sqlite3.connect(path)
    (data,) = raw.execute("SELECT bytes FROM blocks WHERE number = 1").fetchone()
    forged = new_block(1, parse_block(data).header.previous_hash, [b"forged envelope"])
    raw.execute(
        "UPDATE blocks SET bytes = ?, header_hash = ? WHERE number = 1",
        (forged.SerializeToString(), block_header_hash(forged.header)),
    )
    raw.commit()
    raw.close()
    with pytest.raises(LedgerCorruptionError, match="block 2: previous_hash"):
        StateDB(path)


def test_byte_flipped_in_the_database_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger_with_blocks(path, 8)  # closing checkpoints the WAL into the main file
    content = bytearray(path.read_bytes())
    # The envelope text is stored only in the block; the state value is different.
    marker = b"envelope t5"
    assert content.count(marker) == 1
    position = content.index(marker) + len(marker) - 1
    content[position] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(LedgerCorruptionError, match="block 5"):
        StateDB(path)


def test_tail_verification_checks_the_last_blocks(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger_with_blocks(path, 40)
    raw = sqlite3.connect(path)
    (data,) = raw.execute("SELECT bytes FROM blocks WHERE number = 38").fetchone()
    block = parse_block(data)
    block.data.data[0] = b"forged"
    raw.execute("UPDATE blocks SET bytes = ? WHERE number = 38", (block.SerializeToString(),))
    raw.commit()
    raw.close()
    with pytest.raises(LedgerCorruptionError, match="block 38"):
        StateDB(path, verify="tail", tail_blocks=4)


def test_missing_block_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger_with_blocks(path, 4)
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM blocks WHERE number = 1")
    raw.commit()
    raw.close()
    with pytest.raises(LedgerCorruptionError, match="not contiguous"):
        StateDB(path)


def test_stores_and_verifies_real_fabric_blocks(tmp_path: Path) -> None:
    """The 25 blocks written by Fabric 2.5 chain and hash the same way in the store."""
    expected = json.loads((FIXTURES / "expected.json").read_text())
    blocks_meta = expected["blocks"]
    path = tmp_path / "fabric.db"
    with StateDB(path) as store:
        for n in range(25):
            raw = (FIXTURES / "blocks" / f"{n:06d}.block").read_bytes()
            block = parse_block(raw)
            store.commit_block(raw, block_header_hash(block.header), transactions=[], writes=[])
        assert store.height == 25
    with StateDB(path) as store:  # full verification on open passes
        for n, meta in enumerate(blocks_meta):
            assert (store.get_block_hash(n) or b"").hex() == meta["header_hash"]
        assert store.tip_hash.hex() == (
            "0ea9928f3d168e1e3c6c4dffcc7310b45c632d36556bd7521bb6fe78288e4669"
        )


def test_a_file_that_is_not_a_ledger_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not an SQLite database" * 200)
    with pytest.raises(LedgerCorruptionError, match="is damaged"):
        StateDB(path)
