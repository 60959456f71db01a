"""Child process for the StateDB kill test: commit blocks forever, report each commit.

Run as ``python -m tests.network.engine.samples.crash_writer LEDGER``. It
prints ``ready`` once the store is open, then, after each ``commit_block``
returns, the number of the block just committed. Block ``n`` writes key
``counter`` = ``n`` and key ``block-n``, and deletes ``block-(n-2)``, so a
reader can check that state and history match the blocks exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

from network.engine.statedb import StateDB, StateWrite, TxIndexEntry
from network.fabric.blocks import block_header_hash, new_block


def main(path: Path) -> None:
    db = StateDB(path)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        n = db.height
        envelopes = [f"block {n} tx {i} ".encode() * 40 for i in range(3)]
        block = new_block(n, db.tip_hash, envelopes)
        writes = [
            StateWrite(0, "cc", "counter", str(n).encode()),
            StateWrite(1, "cc", f"block-{n}", b"x" * 500),
        ]
        if n >= 2:
            writes.append(StateWrite(2, "cc", f"block-{n - 2}", None))
        db.commit_block(
            block.SerializeToString(),
            block_header_hash(block.header),
            transactions=[TxIndexEntry(i, f"tx-{n}-{i}", 0) for i in range(3)],
            writes=writes,
        )
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
