"""Verify signatures ahead of the replay, in worker processes.

:func:`prevalidated` sits between a block source and the verifier. It groups
the raw blocks into chunks of about ``chunk_bytes``, sends each chunk to a
process pool running :func:`audit.signatures.verify_chunk`, and yields the
blocks in their original order; just before the first block of a chunk is
yielded, the chunk's verified signature keys are handed to the oracle. At
most ``ahead`` chunks are in flight, so memory stays bounded however long
the ledger is.

The pool starts only once the first chunk is full: a ledger smaller than one
chunk is verified in-process, without paying for worker start-up. Workers are
started with ``forkserver`` so they never inherit the parent's threads (a
progress bar, an HTTP client).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from audit.signatures import SignatureOracle, verify_chunk

#: Default chunk size: about 500 endorser transactions of a typical ledger.
DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024
#: How much lower the workers' scheduling priority is than the replay's.
_WORKER_NICENESS = 10


@dataclass
class PipelineStats:
    """What the workers did: chunks verified and the largest worker's peak memory."""

    chunks: int = 0
    worker_peak_rss_kb: int = 0


def _verify_and_measure(raw_blocks: list[bytes]) -> tuple[list[bytes], int]:
    """Worker task: :func:`verify_chunk` plus this worker's peak RSS so far (KiB)."""
    return verify_chunk(raw_blocks), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _lower_priority() -> None:
    """Worker initializer: yield the CPU to the replay, which is the sequential critical path."""
    os.nice(_WORKER_NICENESS)


def _pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["audit.pipeline"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_lower_priority)


def prevalidated(
    raw_blocks: Iterable[bytes],
    oracle: SignatureOracle,
    *,
    workers: int,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ahead: int | None = None,
    stats: PipelineStats | None = None,
) -> Iterator[bytes]:
    """Yield ``raw_blocks`` in order, with their signatures pre-verified into ``oracle``.

    ``workers <= 0`` passes the blocks straight through (everything is then
    verified in-process by the replay).
    """
    if workers <= 0:
        yield from raw_blocks
        return
    limit = ahead if ahead is not None else 2 * workers
    stats = stats if stats is not None else PipelineStats()
    pending: deque[tuple[list[bytes], Future[tuple[list[bytes], int]]]] = deque()
    pool: ProcessPoolExecutor | None = None
    chunk: list[bytes] = []
    size = 0

    def release(item: tuple[list[bytes], Future[tuple[list[bytes], int]]]) -> Iterator[bytes]:
        chunk_blocks, future = item
        keys, rss = future.result()
        stats.chunks += 1
        stats.worker_peak_rss_kb = max(stats.worker_peak_rss_kb, rss)
        oracle.trust(keys)
        yield from chunk_blocks

    try:
        for raw in raw_blocks:
            chunk.append(raw)
            size += len(raw)
            if size < chunk_bytes:
                continue
            if pool is None:
                pool = _pool(workers)
            pending.append((chunk, pool.submit(_verify_and_measure, chunk)))
            chunk, size = [], 0
            while len(pending) > limit:
                yield from release(pending.popleft())
        while pending:
            yield from release(pending.popleft())
        # The tail (smaller than a chunk) is verified in-process.
        oracle.trust(())
        yield from chunk
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
