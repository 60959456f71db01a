"""StateDB under SIGKILL: after each kill the chain verifies and state matches the blocks."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from network.engine.statedb import StateDB, Version

ROOT = Path(__file__).resolve().parents[3]
KILLS = 50


def _run_and_kill(path: Path, delay: float) -> list[int]:
    """Start a committing child, SIGKILL it after ``delay`` seconds of committing."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.network.engine.samples.crash_writer", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    output = child.stdout.read()
    child.wait()
    return [int(line) for line in output.split()]


def _check_consistent(path: Path, reported: list[int]) -> int:
    with StateDB(path) as db:  # full chain verification on open
        height = db.height
        if reported:
            assert height >= reported[-1] + 1, "a block reported committed was lost"
        if height == 0:
            return 0
        last = height - 1
        counter = db.get_state("cc", "counter")
        assert counter is not None
        assert (counter.value, counter.version) == (str(last).encode(), Version(last, 0))
        assert len(db.get_history("cc", "counter")) == height
        assert db.get_state("cc", f"block-{last}") is not None
        assert db.get_state("cc", f"block-{last + 1}") is None
        if last >= 2:
            assert db.get_state("cc", f"block-{last - 2}") is None
        location = db.get_transaction(f"tx-{last}-2")
        assert location is not None
        assert (location.block_num, location.tx_num) == (last, 2)
        assert not db.tx_exists(f"tx-{height}-0")
        return height


@pytest.mark.slow
def test_kill_during_commits_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    rng = random.Random(6)  # timing jitter only
    heights = []
    for _ in range(KILLS):
        reported = _run_and_kill(path, rng.uniform(0.0, 0.08))
        heights.append(_check_consistent(path, reported))
    print("heights after each kill:", heights)
    assert heights == sorted(heights)
    assert heights[-1] > KILLS  # the child really committed between kills
