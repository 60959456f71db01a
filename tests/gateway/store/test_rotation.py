"""Custodian key rotation over a real store (SQLite and PostgreSQL), crash-safety included.

Rows are sealed to a custodian key written in a scratch home's layout
(``HOME/orgs/<Org>/custodian/x25519.key``); the tests open every row with
real X25519 keys before, during and after a rotation.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from crypto.envelope import SEALED_KEY_SIZE, generate_tier_key, open_sealed_key, seal_key
from crypto.errors import DecryptionError
from crypto.keyfiles import (
    generate_x25519_private_key,
    load_x25519_private_key,
    write_x25519_private_key,
)
from gateway.custodian_keys import (
    CustodianKeyRing,
    begin_rotation,
    custodian_key_path,
    key_id,
    load_key_ring,
    previous_key_path,
)
from gateway.keycustodian import KeyCustodian
from gateway.rotation import (
    RotationIncomplete,
    RotationInProgress,
    rotate_custodian_key,
    rotation_lock,
)
from gateway.service.releases import ReleaseLog
from gateway.store import DepartmentStore, RecordErasedError, TierKeyEntry
from tests.gateway.store.conftest import StoreFactory

ORG = "Education"
REPO = Path(__file__).resolve().parents[3]
TierKeys = dict[tuple[str, int, str], bytes]


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A scratch home holding only the Education custodian key."""
    path = tmp_path / "home"
    write_x25519_private_key(custodian_key_path(path, ORG), generate_x25519_private_key())
    return path


def populate(
    store: DepartmentStore, home: Path, records: int, *, legacy_every: int = 3
) -> TierKeys:
    """``records`` records x 2 tiers sealed to the current key; every few rows without key id."""
    ring = load_key_ring(home, ORG)
    keys: TierKeys = {}
    for n in range(records):
        for tier in ("T1", "T2"):
            tier_key = generate_tier_key()
            ciphertext = os.urandom(48) + f"{n}{tier}".encode()
            address = store.put_blob(ciphertext)
            legacy = (n % legacy_every) == 0
            store.put_tier_key(
                record_id=f"rec-{n:05d}",
                version=1,
                tier=tier,
                sealed_key=seal_key(tier_key, ring.current_public),
                address=address,
                size=len(ciphertext),
                key_id=None if legacy else ring.current_id,
            )
            keys[(f"rec-{n:05d}", 1, tier)] = tier_key
    return keys


def all_rows(store: DepartmentStore, records: int) -> list[TierKeyEntry]:
    rows: list[TierKeyEntry] = []
    for n in range(records):
        try:
            rows.extend(store.list_tier_keys(record_id=f"rec-{n:05d}"))
        except RecordErasedError:
            continue
    return rows


def open_row(entry: TierKeyEntry, ring: CustodianKeyRing) -> bytes:
    """Open a row the way the custodian does: the key its id names, else any key."""
    if entry.key_id is not None:
        private = ring.private_for(entry.key_id)
        assert private is not None, f"{entry.record_id} names unknown key {entry.key_id}"
        return open_sealed_key(entry.sealed_key, private)
    for private in ring.candidates():
        try:
            return open_sealed_key(entry.sealed_key, private)
        except DecryptionError:
            continue
    raise AssertionError(f"{entry.record_id} {entry.tier} opens with no custodian key")


def assert_every_row_opens(
    store: DepartmentStore, home: Path, keys: TierKeys, records: int
) -> None:
    ring = load_key_ring(home, ORG)
    rows = all_rows(store, records)
    assert len(rows) == len(keys)
    for entry in rows:
        assert open_row(entry, ring) == keys[(entry.record_id, entry.version, entry.tier)]


def test_rotation_reseals_every_row_and_retires_the_old_key(
    open_store: StoreFactory, home: Path
) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 20)
    old = load_x25519_private_key(custodian_key_path(home, ORG))
    seen: list[CustodianKeyRing] = []

    result = rotate_custodian_key(home, ORG, store, now=_now, batch_size=3, on_keys=seen.append)

    new = load_x25519_private_key(custodian_key_path(home, ORG))
    assert new != old
    assert result.old_key_id == CustodianKeyRing(old).current_id
    assert result.new_key_id == CustodianKeyRing(new).current_id != result.old_key_id
    assert result.resealed == len(keys)
    assert not result.resumed
    assert result.finished_at >= result.started_at
    assert not previous_key_path(home, ORG).exists()
    assert oct(custodian_key_path(home, ORG).stat().st_mode & 0o777) == "0o600"
    # The running custodian was handed both keys while re-sealing, then the new one alone.
    assert [r.previous_id for r in seen] == [result.old_key_id, None]
    assert {r.current_id for r in seen} == {result.new_key_id}
    for entry in all_rows(store, 20):
        assert entry.key_id == result.new_key_id
        assert open_sealed_key(entry.sealed_key, new) == keys[(entry.record_id, 1, entry.tier)]
        with pytest.raises(DecryptionError):
            open_sealed_key(entry.sealed_key, old)
    assert store.count_tier_keys_not_sealed_to(result.new_key_id) == 0


def test_erased_records_stay_erased_through_a_rotation(
    open_store: StoreFactory, home: Path
) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 6)
    erased = store.erase_record(record_id="rec-00002", erased_by="admin.education", now=_now())
    assert erased.tier_keys_destroyed == 2

    result = rotate_custodian_key(home, ORG, store, now=_now, batch_size=2)

    assert result.resealed == len(keys) - 2
    with pytest.raises(RecordErasedError):
        store.get_tier_key(record_id="rec-00002", version=1, tier="T1")
    assert store.get_erasure(record_id="rec-00002") is not None


def test_a_second_rotation_rotates_again(open_store: StoreFactory, home: Path) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 4)
    first = rotate_custodian_key(home, ORG, store, now=_now)
    second = rotate_custodian_key(home, ORG, store, now=_now)
    assert second.old_key_id == first.new_key_id
    assert second.new_key_id not in (first.old_key_id, first.new_key_id)
    assert second.resealed == len(keys)
    assert_every_row_opens(store, home, keys, 4)


def test_an_interrupted_rotation_leaves_rows_openable_and_resumes(
    open_store: StoreFactory, home: Path
) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 15)

    class Crash(Exception):
        pass

    def crash_after_two_batches(done: int) -> None:
        if done >= 4:
            raise Crash

    with pytest.raises(Crash):
        rotate_custodian_key(
            home, ORG, store, now=_now, batch_size=2, on_batch=crash_after_two_batches
        )
    ring = load_key_ring(home, ORG)
    assert ring.previous is not None  # both keys are kept
    ids = {entry.key_id for entry in all_rows(store, 15)}
    assert ring.current_id in ids  # half-way
    assert ids - {ring.current_id}
    assert_every_row_opens(store, home, keys, 15)

    result = rotate_custodian_key(home, ORG, store, now=_now, batch_size=4)
    assert result.resumed
    assert result.new_key_id == ring.current_id  # the same new key, not a third one
    assert result.old_key_id == ring.previous_id
    assert result.resealed == len(keys) - 4
    assert not previous_key_path(home, ORG).exists()
    assert_every_row_opens(store, home, keys, 15)


def test_a_crash_between_the_two_key_file_writes_resumes(
    open_store: StoreFactory, home: Path
) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 3)
    old = load_x25519_private_key(custodian_key_path(home, ORG))
    # The state after step 1 only: previous == current == old.
    write_x25519_private_key(previous_key_path(home, ORG), old)
    result = rotate_custodian_key(home, ORG, store, now=_now)
    assert result.resumed
    assert result.old_key_id == CustodianKeyRing(old).current_id
    assert result.resealed == len(keys)
    assert_every_row_opens(store, home, keys, 3)


def test_rows_that_open_with_neither_key_keep_the_previous_key(
    open_store: StoreFactory, home: Path
) -> None:
    store = open_store(ORG)
    populate(store, home, 2)
    stranger = CustodianKeyRing(generate_x25519_private_key())
    ciphertext = b"sealed to someone else"
    address = store.put_blob(ciphertext)
    store.put_tier_key(
        record_id="rec-stray",
        version=1,
        tier="T1",
        sealed_key=seal_key(generate_tier_key(), stranger.current_public),
        address=address,
        size=len(ciphertext),
    )
    with pytest.raises(RotationIncomplete) as caught:
        rotate_custodian_key(home, ORG, store, now=_now)
    assert caught.value.code == "rotation_incomplete"
    assert previous_key_path(home, ORG).exists()
    assert load_key_ring(home, ORG).previous is not None


def test_a_concurrent_rotation_is_refused(open_store: StoreFactory, home: Path) -> None:
    store = open_store(ORG)
    populate(store, home, 1)
    with rotation_lock(home, ORG), pytest.raises(RotationInProgress):
        rotate_custodian_key(home, ORG, store, now=_now)
    assert not previous_key_path(home, ORG).exists()  # nothing started


def test_key_ids_are_short_hex_of_the_public_key(home: Path) -> None:
    ring = load_key_ring(home, ORG)
    assert ring.current_id == key_id(ring.current_public)
    assert len(ring.current_id) == 16
    assert int(ring.current_id, 16) >= 0
    assert ring.private_for(ring.current_id) == ring.current
    assert ring.private_for("0" * 16) is None


def test_begin_rotation_files_are_private(home: Path) -> None:
    ring, resumed = begin_rotation(home, ORG)
    assert not resumed
    assert ring.previous is not None
    for path in (custodian_key_path(home, ORG), previous_key_path(home, ORG)):
        assert path.stat().st_mode & 0o077 == 0


# ----------------------------------------------------------------------- migration


def test_a_store_without_key_ids_is_migrated_and_rotates(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "old.sqlite"
    ring = load_key_ring(home, ORG)
    tier_key = generate_tier_key()
    ciphertext = b"an old release's ciphertext"
    address = hashlib.sha256(ciphertext).hexdigest()
    with sqlite3.connect(path) as db:  # the tables as the previous release created them
        db.executescript(
            """
            CREATE TABLE blob (address VARCHAR(64) PRIMARY KEY, data BLOB NOT NULL,
                               size INTEGER NOT NULL);
            CREATE TABLE tier_key (record_id VARCHAR(256), version INTEGER, tier VARCHAR(2),
                                   sealed_key BLOB NOT NULL, address VARCHAR(64) NOT NULL,
                                   size INTEGER NOT NULL,
                                   PRIMARY KEY (record_id, version, tier));
            CREATE INDEX ix_tier_key_address ON tier_key (address);
            """
        )
        db.execute("INSERT INTO blob VALUES (?, ?, ?)", (address, ciphertext, len(ciphertext)))
        db.execute(
            "INSERT INTO tier_key VALUES (?, ?, ?, ?, ?, ?)",
            ("rec-old", 1, "T1", seal_key(tier_key, ring.current_public), address, len(ciphertext)),
        )
    store = DepartmentStore.open(ORG, f"sqlite:///{path}")
    try:
        columns = {c["name"] for c in inspect(store.engine).get_columns("tier_key")}
        assert "key_id" in columns
        entry = store.get_tier_key(record_id="rec-old", version=1, tier="T1")
        assert entry.key_id is None
        result = rotate_custodian_key(home, ORG, store, now=_now)
        assert result.resealed == 1
        entry = store.get_tier_key(record_id="rec-old", version=1, tier="T1")
        assert entry.key_id == result.new_key_id
        assert open_row(entry, load_key_ring(home, ORG)) == tier_key
    finally:
        store.close()
    DepartmentStore.open(ORG, f"sqlite:///{path}").close()  # migrating twice is harmless


def test_postgres_store_without_key_ids_is_migrated(pg_url: str, home: Path) -> None:
    import uuid

    from sqlalchemy import create_engine, text

    from tests.gateway.store.conftest import drop_schema

    schema = f"test_{uuid.uuid4().hex[:20]}"
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as db:
            db.execute(text(f'CREATE SCHEMA "{schema}"'))
            db.execute(
                text(
                    f'CREATE TABLE "{schema}".tier_key (record_id VARCHAR(256),'
                    " version INTEGER, tier VARCHAR(2), sealed_key BYTEA NOT NULL,"
                    " address VARCHAR(64) NOT NULL, size INTEGER NOT NULL,"
                    " PRIMARY KEY (record_id, version, tier))"
                )
            )
        store = DepartmentStore.open(ORG, pg_url, schema=schema)
        try:
            columns = {
                c["name"] for c in inspect(store.engine).get_columns("tier_key", schema=schema)
            }
            assert "key_id" in columns
            assert store.count_tier_keys_not_sealed_to("0" * 16) == 0
        finally:
            store.close()
        DepartmentStore.open(ORG, pg_url, schema=schema).close()
    finally:
        engine.dispose()
        drop_schema(pg_url, schema)


# ----------------------------------------------------------------------- kill -9

_ROTATOR = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from gateway.rotation import rotate_custodian_key
    from gateway.store import DepartmentStore

    home, url, pause = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    store = DepartmentStore.open("Education", url)

    def progress(done):
        print(done, flush=True)
        time.sleep(pause)

    rotate_custodian_key(home, "Education", store, now=lambda: datetime.now(UTC),
                         batch_size=2, on_batch=progress)
    print("done", flush=True)
    """
)


def _start_rotator(tmp_path: Path, home: Path, url: str, pause: float) -> subprocess.Popen[str]:
    script = tmp_path / "rotator.py"
    script.write_text(_ROTATOR)
    return subprocess.Popen(
        [sys.executable, str(script), str(home), url, str(pause)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


RECORDS = 150


@pytest.fixture
def sqlite_store(tmp_path: Path) -> tuple[DepartmentStore, str]:
    url = f"sqlite:///{tmp_path / 'Education.sqlite'}"
    return DepartmentStore.open(ORG, url), url


def test_sigkill_mid_rotation_leaves_every_row_openable_and_a_rerun_completes(
    tmp_path: Path, home: Path, sqlite_store: tuple[DepartmentStore, str]
) -> None:
    store, url = sqlite_store
    keys = populate(store, home, RECORDS)
    old_id = load_key_ring(home, ORG).current_id
    process = _start_rotator(tmp_path, home, url, pause=0.005)
    assert process.stdout is not None
    try:
        # Wait until several batches are committed, then kill -9 mid-flight.
        for _ in range(5):
            line = process.stdout.readline()
            assert line.strip().isdigit(), process.stderr.read() if process.stderr else line
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    ring = load_key_ring(home, ORG)
    assert ring.previous_id == old_id
    ids = [entry.key_id for entry in all_rows(store, RECORDS)]
    assert ids.count(ring.current_id) >= 8
    assert ids.count(ring.current_id) < len(keys)
    assert_every_row_opens(store, home, keys, RECORDS)

    result = rotate_custodian_key(home, ORG, store, now=_now, batch_size=50)
    assert result.resumed
    assert result.new_key_id == ring.current_id
    assert not previous_key_path(home, ORG).exists()
    assert_every_row_opens(store, home, keys, RECORDS)
    old = ring.previous
    assert old is not None
    for entry in all_rows(store, RECORDS):
        assert len(entry.sealed_key) == SEALED_KEY_SIZE
        with pytest.raises(DecryptionError):
            open_sealed_key(entry.sealed_key, old)
    store.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_instant_never_strands_a_row(
    tmp_path: Path, home: Path, sqlite_store: tuple[DepartmentStore, str], seed: int
) -> None:
    store, url = sqlite_store
    keys = populate(store, home, 40)
    delay = random.Random(seed).uniform(0.0, 1.5)  # interpreter start-up included
    process = _start_rotator(tmp_path, home, url, pause=0.002)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert_every_row_opens(store, home, keys, 40)
    rotate_custodian_key(home, ORG, store, now=_now)
    assert not previous_key_path(home, ORG).exists()
    assert_every_row_opens(store, home, keys, 40)
    store.close()


# ------------------------------------------------------------- releases meanwhile


def test_the_custodian_opens_every_row_at_every_step_of_a_rotation(
    open_store: StoreFactory, home: Path, tmp_path: Path
) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 10)
    custodian = KeyCustodian(
        ORG, load_key_ring(home, ORG), store, ReleaseLog(tmp_path / "releases.jsonl"), home=home
    )
    checked: list[int] = []

    def open_everything(done: int) -> None:
        # Between two batches, as a release would: every row opens with the custodian's ring.
        for entry in all_rows(store, 10):
            assert custodian.open_tier_key(entry) == keys[(entry.record_id, 1, entry.tier)]
        checked.append(done)

    result = rotate_custodian_key(
        home,
        ORG,
        store,
        now=_now,
        batch_size=3,
        on_keys=custodian.install,
        on_batch=open_everything,
    )
    assert len(checked) >= 7  # 20 rows in batches of 3
    assert custodian.keys.current_id == result.new_key_id
    assert custodian.keys.previous is None
    open_everything(-1)


def test_a_custodian_that_missed_the_rotation_rereads_its_key_files(
    open_store: StoreFactory, home: Path, tmp_path: Path
) -> None:
    store = open_store(ORG)
    keys = populate(store, home, 2)
    stale = KeyCustodian(
        ORG, load_key_ring(home, ORG), store, ReleaseLog(tmp_path / "releases.jsonl"), home=home
    )
    rotate_custodian_key(home, ORG, store, now=_now)  # another process, say
    for entry in all_rows(store, 2):
        assert stale.open_tier_key(entry) == keys[(entry.record_id, 1, entry.tier)]


def test_a_gateway_started_after_a_crash_holds_both_keys(
    tmp_path: Path, home: Path, sqlite_store: tuple[DepartmentStore, str]
) -> None:
    from datetime import timedelta

    from gateway.custodian import Custodians
    from gateway.store import StoreRegistry

    store, url = sqlite_store
    keys = populate(store, home, 6)

    def crash(done: int) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        rotate_custodian_key(home, ORG, store, now=_now, batch_size=4, on_batch=crash)
    registry = StoreRegistry(home, urls={ORG: url}, orgs=[ORG])
    custodians = Custodians(
        home=home,
        custodian_keys={ORG: load_x25519_private_key(custodian_key_path(home, ORG))},
        stores=registry,
        ledger=None,  # type: ignore[arg-type]  # no release is verified here
        grant_ttl=timedelta(minutes=5),
        max_skew=timedelta(minutes=1),
    )
    try:
        ring = custodians.keys(ORG)
        assert ring.previous_id == load_key_ring(home, ORG).previous_id is not None
        assert custodians.sealing_key(ORG) == (ring.current_public, ring.current_id)
        assert custodians.public_keys[ORG] == ring.current_public
        for entry in all_rows(store, 6):
            opened = custodians.custodian(ORG).open_tier_key(entry)
            assert opened == keys[(entry.record_id, 1, entry.tier)]
    finally:
        registry.close()
        store.close()
