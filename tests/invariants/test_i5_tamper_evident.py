"""I5: tampering is evident -- on a ledger and stores the real gateway wrote.

tests/audit/test_tamper_*.py tamper with an engine-written scenario and the
Fabric fixture in every way the ledger can be attacked (blocks, transactions,
validation codes, endorsements, decisions, policy, world state, stores, key
releases; docs/invariants.md lists them). Here the same auditor's replay runs
on a copy of the demo home, which the gateway and its custodians wrote
through the SDK, after one change each: it must fail and name where --
block and transaction, or the store and address.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from audit.findings import Finding, FindingKind
from audit.replay import ReplayConfig, replay_ledger
from audit.sources import HomeSource
from tests.invariants.ledger import LedgerTx, composite, ledger_transactions


def _replay(home: Path) -> list[Finding]:
    with HomeSource(home) as source:
        outcome = replay_ledger(
            source, ReplayConfig(stores=home / "stores"), now=datetime.now().astimezone()
        )
    return outcome.report.findings


@dataclass(frozen=True)
class Expected:
    kind: FindingKind
    block: int | None
    tx_id: str | None
    says: str


def _first(
    home: Path, function: str, where: Callable[[LedgerTx], bool] = lambda _: True
) -> LedgerTx:
    return next(
        t for t in ledger_transactions(home) if t.valid and t.function == function and where(t)
    )


def _record_id(ltx: LedgerTx) -> str:
    event = ltx.event()
    assert event is not None
    return str(event["record_id"])


def _record_tier(home: Path) -> tuple[LedgerTx, str, str]:
    """A record registration, its owner and its T1 ciphertext address."""
    ltx = _first(home, "RegisterRecord")
    record = ltx.argument()
    owner = json.loads(ltx.writes()[composite("record", _record_id(ltx))] or b"{}")["owner_org"]
    return ltx, owner, record["tiers"]["T1"]["content_address"]


def _flip_last_byte(store: Path, address: str) -> None:
    with sqlite3.connect(store) as conn:
        (data,) = conn.execute("SELECT data FROM blob WHERE address = ?", (address,)).fetchone()
        altered = bytes(data[:-1]) + bytes([data[-1] ^ 0x01])
        conn.execute("UPDATE blob SET data = ? WHERE address = ?", (altered, address))


def altered_record_ciphertext(home: Path) -> Expected:
    ltx, owner, address = _record_tier(home)
    _flip_last_byte(home / "stores" / f"{owner}.sqlite", address)
    return Expected(FindingKind.BLOB_MISMATCH, ltx.block, ltx.tx.tx_id, address[:16])


def substituted_record_ciphertext(home: Path) -> Expected:
    """Another ciphertext, stored consistently under its own address: the ledger's is gone."""
    ltx, owner, address = _record_tier(home)
    other = b"\x01" + hashlib.sha256(b"a forged payload").digest() * 4
    with sqlite3.connect(home / "stores" / f"{owner}.sqlite") as conn:
        conn.execute(
            "UPDATE blob SET data = ?, address = ?, size = ? WHERE address = ?",
            (other, hashlib.sha256(other).hexdigest(), len(other), address),
        )
        conn.execute(
            "UPDATE tier_key SET address = ? WHERE address = ?",
            (hashlib.sha256(other).hexdigest(), address),
        )
    return Expected(FindingKind.BLOB_MISSING, ltx.block, ltx.tx.tx_id, "not in store")


def altered_contest_reason(home: Path) -> Expected:
    """The encrypted contest reason (Audit's store; the ledger holds only its hash)."""
    store = home / "stores" / "Audit.sqlite"
    with sqlite3.connect(store) as conn:
        (address,) = conn.execute("SELECT address FROM blob").fetchone()
    _flip_last_byte(store, address)
    return Expected(
        FindingKind.BLOB_MISMATCH, None, None, f"Audit store: ciphertext under {address[:16]}"
    )


def flipped_decision_in_a_block(home: Path) -> Expected:
    """A denial turned into a grant inside the stored block (same length)."""
    ltx = _first(home, "RequestAccess", lambda t: (t.event() or {}).get("decision") == "denied")
    path = home / "ledger" / "accessledger.sqlite"
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute("SELECT bytes FROM blocks WHERE number = ?", (ltx.block,)).fetchone()
        assert data.count(b'"decision":"denied"') >= 1
        forged = bytes(data).replace(b'"decision":"denied"', b'"decision":"grant"\x20', 1)
        conn.execute("UPDATE blocks SET bytes = ? WHERE number = ?", (forged, ltx.block))
    return Expected(FindingKind.DATA_HASH, ltx.block, None, f"block {ltx.block}")


def widened_key_release(home: Path) -> Expected:
    """A release-log line claiming a tier the grant never released."""
    path = home / "custodians" / "PublicSecurity" / "releases.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[0])
    entry["tier"] = "T3"
    lines[0] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Expected(FindingKind.KEY_RELEASE, None, entry["tx_id"], entry["record_id"])


def rewritten_record_state(home: Path) -> Expected:
    """A record's region changed in the engine's world state (the blocks untouched)."""
    ltx, _, _ = _record_tier(home)
    record_id = _record_id(ltx)
    key = composite("record", record_id).encode("utf-8")
    with sqlite3.connect(home / "ledger" / "accessledger.sqlite") as conn:
        (value,) = conn.execute(
            "SELECT value FROM state WHERE namespace = 'accessledger' AND key = ?", (key,)
        ).fetchone()
        record = json.loads(value)
        record["region"] = "510100"
        conn.execute(
            "UPDATE state SET value = ? WHERE namespace = 'accessledger' AND key = ?",
            (json.dumps(record).encode(), key),
        )
    return Expected(FindingKind.STATE, None, None, record_id)


TAMPERS = [
    altered_record_ciphertext,
    substituted_record_ciphertext,
    altered_contest_reason,
    flipped_decision_in_a_block,
    widened_key_release,
    rewritten_record_state,
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__ for t in TAMPERS])
def test_replay_names_the_change(demo_copy: Path, tamper: Callable[[Path], Expected]) -> None:
    assert _replay(demo_copy) == []  # the copy verifies before the change
    expected = tamper(demo_copy)
    findings = _replay(demo_copy)
    assert findings, "the change went unnoticed"
    first = findings[0]
    assert first.kind == expected.kind, [str(f) for f in findings]
    if expected.block is not None:
        assert first.block == expected.block
    if expected.tx_id is not None:
        assert first.tx_id == expected.tx_id
    assert expected.says in str(first)
