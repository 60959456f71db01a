"""``accessledger bench replay``: how fast audit replay verifies a large ledger.

The benchmark generates a ledger with :mod:`audit.generate` (unless given
one), then replays it once per worker count in a *fresh child process*
(``python -m audit.bench``), so each run's peak memory (``ru_maxrss`` of the
child and of its signature workers) is its own. Each run verifies
everything a normal ``audit replay --export`` does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.pipeline import PipelineStats, prevalidated
from audit.sources import ExportSource
from audit.verifier import LedgerVerifier
from crypto.bench import machine_info


@dataclass(frozen=True)
class ReplayRun:
    """One measured replay."""

    workers: int
    blocks: int
    transactions: int
    signatures: int
    seconds: float
    transactions_per_second: float
    peak_rss_mb: float
    workers_peak_rss_mb: float
    findings: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the same description every bench command gives)."""
    return machine_info(datetime.now(UTC))


def measure_replay(path: Path, workers: int) -> ReplayRun:
    """Replay ``path`` in this process and measure it (the child side of the benchmark)."""
    verifier = LedgerVerifier()
    pipeline = PipelineStats()
    start = time.perf_counter()
    source = ExportSource(path).blocks()
    for raw in prevalidated(source, verifier.oracle, workers=workers, stats=pipeline):
        verifier.update(raw)
    seconds = time.perf_counter() - start
    stats = verifier.stats
    return ReplayRun(
        workers=workers,
        blocks=stats.blocks,
        transactions=stats.transactions,
        signatures=stats.signatures,
        seconds=round(seconds, 3),
        transactions_per_second=round(stats.transactions / seconds, 1),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        workers_peak_rss_mb=round(pipeline.worker_peak_rss_kb / 1024, 1),
        findings=len(verifier.findings),
    )


def replay_in_child(path: Path, workers: int) -> ReplayRun:
    """Run :func:`measure_replay` in a fresh interpreter and return its measurement."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "audit.bench", str(path), str(workers)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise AuditError(f"the replay benchmark child failed: {tail}", code="bench_failed")
    return ReplayRun(**json.loads(completed.stdout))


def _main(argv: list[str]) -> int:
    path, workers = Path(argv[0]), int(argv[1])
    run = measure_replay(path, workers)
    print(json.dumps(run.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
