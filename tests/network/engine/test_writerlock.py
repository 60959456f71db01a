"""One writer per ledger: a second engine on the same home is refused, a dead one is not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from network.engine.network import open_ledger
from network.engine.writerlock import LedgerInUseError
from tests.network.engine.test_pipeline import make_home, open_network


async def test_second_writer_refused_until_the_first_closes(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    first = open_network(home)
    try:
        with pytest.raises(LedgerInUseError, match="open for writing by another process"):
            open_network(home)
        # Readers never need the writer lock.
        reader = open_ledger(home)
        assert reader.height == 1
        reader.close()
    finally:
        first.close()
    second = open_network(home)
    second.close()


def test_lock_of_a_killed_writer_is_released(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from tests.network.engine.test_pipeline import open_network
                from pathlib import Path
                net = open_network(Path({str(home)!r}))
                print("open", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(LedgerInUseError):
            open_network(home)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    open_network(home).close()  # the kernel dropped the dead writer's lock
