"""``settle_heap``: the start-up heap frozen, the young generation collected less often.

Run in a fresh interpreter: the collector's settings are process-wide, and
the test process must keep CPython's defaults.
"""

from __future__ import annotations

import json
import subprocess
import sys

from network.engine.heap import YOUNG_THRESHOLD

_PROBE = """
import gc, json
from network.engine.heap import settle_heap
default = gc.get_threshold()
start_up = [[i] for i in range(1000)]  # long-lived objects built at start-up
settle_heap()
cycle = []
cycle.append(cycle)  # garbage in a reference cycle, made after start-up
del cycle
print(json.dumps({
    "default": default, "threshold": gc.get_threshold(),
    "frozen": gc.get_freeze_count(), "collected": gc.collect(),
}))
"""


def test_start_up_is_frozen_and_cycles_are_still_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    probe = json.loads(done.stdout)
    assert probe["default"] == [700, 10, 10]
    assert probe["threshold"] == [YOUNG_THRESHOLD, 10, 10]
    assert probe["frozen"] >= 1000  # the start-up objects, and whatever the interpreter held
    assert probe["collected"] >= 1  # the cycle made afterwards is still garbage-collected
