"""Off-chain ciphertexts checked against the content addresses the ledger holds (``--stores``)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from audit.findings import FindingKind
from tests.audit.conftest import replay
from tests.audit.scenario import Scenario


def _address_of(store: Path, n: int = 0) -> str:
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT address FROM blob ORDER BY address").fetchall()
    return str(rows[n][0])


def test_untouched_stores_verify(scenario: Scenario) -> None:
    report = replay(scenario.export, stores=scenario.stores).report
    assert report.ok, [str(f) for f in report.findings]
    assert report.extra["offchain"] == {"stores": 4, "blobs": 15, "referenced": 15, "erased": 0}


def test_altered_blob_is_named_with_its_record_and_block(scenario: Scenario) -> None:
    store = scenario.stores / "Housing.sqlite"
    address = _address_of(store)
    with sqlite3.connect(store) as conn:
        (data,) = conn.execute("SELECT data FROM blob WHERE address = ?", (address,)).fetchone()
        altered = bytearray(data)
        altered[-1] ^= 0x80
        conn.execute("UPDATE blob SET data = ? WHERE address = ?", (bytes(altered), address))
    report = replay(scenario.export, stores=scenario.stores).report
    assert [(f.kind, f.block, f.tx_id) for f in report.findings] == [
        (FindingKind.BLOB_MISMATCH, scenario.blocks["record_hr-1"], scenario.tx["record_hr-1"])
    ]
    message = report.findings[0].message
    assert message.startswith("record hr-1 v1 T")
    assert "(Housing)" in message
    assert address[:16] in message


def test_missing_blob_is_named(scenario: Scenario) -> None:
    store = scenario.stores / "Health.sqlite"
    address = _address_of(store, 2)
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM blob WHERE address = ?", (address,))
    report = replay(scenario.export, stores=scenario.stores).report
    assert [(f.kind, f.tx_id) for f in report.findings] == [
        (FindingKind.BLOB_MISSING, scenario.tx["record_he-1"])
    ]
    assert "not in store" in report.findings[0].message


def test_unreferenced_blob_with_wrong_address_is_named(scenario: Scenario) -> None:
    store = scenario.stores / "Tax.sqlite"
    store.parent.mkdir(exist_ok=True)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE blob (address TEXT PRIMARY KEY, data BLOB, size INTEGER)")
        conn.execute("INSERT INTO blob VALUES (?, ?, ?)", (wrong, b"ciphertext", 10))
    report = replay(scenario.export, stores=scenario.stores).report
    assert [f.kind for f in report.findings] == [FindingKind.BLOB_MISMATCH]
    assert report.findings[0].message.startswith("Tax store: ciphertext under")
