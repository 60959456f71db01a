"""Invariant I6: a kill -9 at any instant loses no committed transaction, leaves no partial block.

A subprocess (``crash_worker``) runs the embedded network with eight clients
submitting without pause and prints each transaction id only after
``submit`` returned it as committed. The test SIGKILLs it at random moments
-- usually while blocks are being validated and committed, sometimes while
the network is still opening -- at least 50 times, reusing one home, and
after every kill reopens the ledger and checks:

* the hash chain verifies (the store's full check on open) and no block seen
  before has changed or disappeared;
* the tx index matches the blocks exactly: every transaction of every block
  at the recorded position and code, and nothing indexed beyond the height;
* every transaction reported committed is there, VALID;
* the world state equals the replay of the valid transactions' writes, and
  each key's latest history entry is its current value.

At the end the whole ledger goes through the Fabric replay checker.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from network.engine.network import ledger_path
from network.engine.statedb import StateDB
from network.fabric.blocks import parse_block, transactions_filter
from network.fabric.policy import EndorsementPolicies
from network.fabric.replay import LedgerReplay
from network.fabric.transactions import parse_envelope
from tests.network.engine.crash_worker import CHAINCODE
from tests.network.engine.test_pipeline import make_home

ROOT = Path(__file__).resolve().parents[3]
KILLS = 50
VALID = 0


class LedgerModel:
    """What the blocks say the store must hold, built up incrementally across restarts."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.state: dict[str, bytes] = {}
        self.tx_count = 0

    def _apply(self, db: StateDB, number: int) -> None:
        data = db.get_block(number)
        assert data is not None
        block = parse_block(data)
        codes = transactions_filter(block)
        assert len(codes) == len(block.data.data), f"block {number} lacks validation codes"
        for index, raw in enumerate(block.data.data):
            tx = parse_envelope(bytes(raw))
            location = db.get_transaction(tx.tx_id)
            assert location is not None, f"tx {index} of block {number} is not indexed"
            assert (location.block_num, location.tx_num) == (number, index)
            assert location.validation_code == codes[index]
            self.tx_count += 1
            if codes[index] != VALID or tx.action is None:
                continue
            rwset = tx.action.rwset(CHAINCODE)
            for write in rwset.writes if rwset else ():
                if write.is_delete:
                    self.state.pop(write.key, None)
                else:
                    self.state[write.key] = write.value
        stored = db.get_block_hash(number)
        assert stored is not None
        self.hashes.append(stored)

    def check(self, path: Path, reported: set[str]) -> int:
        with StateDB(path) as db:  # verifies every block's data hash and the chain
            height = db.height
            assert height >= len(self.hashes), "committed blocks disappeared"
            for number, known in enumerate(self.hashes):
                assert db.get_block_hash(number) == known, f"block {number} changed"
            for number in range(len(self.hashes), height):
                self._apply(db, number)
            for tx_id in reported:
                location = db.get_transaction(tx_id)
                assert location is not None, f"reported-committed {tx_id} is missing"
                assert location.validation_code == VALID
                assert location.block_num < height
            state = {kv.key: kv.value for kv in db.get_state_range(CHAINCODE, "", "")}
            assert state == self.state
            for key in random.sample(sorted(state), min(50, len(state))):
                assert db.get_history(CHAINCODE, key)[0].value == state[key]
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            count, last = conn.execute(
                "SELECT COUNT(*), MAX(block_num) FROM transactions"
            ).fetchone()
        assert count == self.tx_count
        assert last == (height - 1 if height else None)
        return height


def _run_and_kill(home: Path, delay: float, wait_ready: bool) -> tuple[set[str], bool]:
    """Start the worker, SIGKILL it ``delay`` s after it is ready (or after start)."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.network.engine.crash_worker", str(home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert worker.stdout is not None
    ready = False
    if wait_ready:
        ready = worker.stdout.readline() == b"ready\n"
        assert ready, "worker did not start"
    time.sleep(delay)
    worker.send_signal(signal.SIGKILL)
    output = worker.stdout.read()
    assert worker.wait() == -signal.SIGKILL
    lines = output.split(b"\n")[:-1]  # the last piece is unterminated (or empty)
    reported = {line.decode() for line in lines if line and line != b"ready"}
    return reported, ready or b"ready\n" in output[:6]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    home = make_home(tmp_path, max_message_count=10, batch_timeout_ms=10)
    path = ledger_path(home, "accessledger")
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    model = LedgerModel()
    reported: set[str] = set()
    kills_while_running = 0
    for kill in range(KILLS):
        # Every tenth kill (and the first, which creates the genesis block) lands
        # while the process may still be starting or opening the ledger.
        early = kill % 10 == 0
        delay = rng.uniform(0.0, 0.4) if early else rng.uniform(0.0, 0.25)
        committed, started = _run_and_kill(home, delay, wait_ready=not early)
        kills_while_running += started
        reported |= committed
        if path.exists():
            model.check(path, reported)
    assert kills_while_running >= 40
    assert len(reported) > 100, "the worker hardly committed anything"

    with StateDB(path) as db:
        blocks = [parse_block(data) for _, data in db.iter_blocks()]
    replay = LedgerReplay(
        policies=lambda channel, _state: EndorsementPolicies(
            lambda ns: (
                channel.policies.get("/Channel/Application/Endorsement")
                if ns == CHAINCODE
                else None
            )
        )
    )
    outcomes = replay.replay(blocks)
    assert all(not o.mismatches for o in outcomes)
    assert all(o.commit_hash_matches for o in outcomes[1:])
    assert replay.state.namespace(CHAINCODE) == model.state
