"""The embedded network's commit loop: ordered blocks committed in order, off the event loop.

The orderer hands each block it cuts to :meth:`CommitLoop.deliver` on the
event loop; the loop's task takes them in order and commits each on one
dedicated worker thread (SQLite writes and signature checks never block the
event loop), then reports it. If a commit fails the loop reports the failure
and stops: the orderer's chain is then ahead of the store, and committing
on would fork it. :meth:`CommitLoop.drain` ends the loop once every block
delivered so far is committed.

It lives apart from :mod:`network.engine.network` because it is one
mechanism with its own state (queue, task, worker thread); the network
decides what a committed block or a failure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from network.engine.committer import CommittedBlock

logger = logging.getLogger("accessledger.network")

T = TypeVar("T")


class CommitLoop:
    """Commits delivered blocks in order on a worker thread (see the module docstring)."""

    def __init__(
        self,
        commit: Callable[[Any], CommittedBlock],
        *,
        on_committed: Callable[[CommittedBlock], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._commit = commit
        self._on_committed = on_committed
        self._on_failure = on_failure
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="committer")
        self._blocks: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran (the loop is bound to an event loop)."""
        return self._task is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start taking delivered blocks on ``loop``."""
        self._blocks = asyncio.Queue()
        self._task = loop.create_task(self._run(), name="committer")

    def deliver(self, block: Any) -> None:
        """Queue an ordered block for commit (the orderer's delivery callback)."""
        assert self._blocks is not None
        self._blocks.put_nowait(block)

    async def run_in_worker(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the commit worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

    async def _run(self) -> None:
        assert self._blocks is not None
        while True:
            block = await self._blocks.get()
            if block is None:
                return
            try:
                committed = await self.run_in_worker(functools.partial(self._commit, block))
            except Exception as exc:
                # The orderer's chain is now ahead of the store: stop, never fork.
                logger.error(
                    "committing block %s failed; the network stops: %s", block.header.number, exc
                )
                self._on_failure(exc)
                return
            self._on_committed(committed)

    async def drain(self) -> None:
        """End the loop after every block delivered so far, and wait for it (if started)."""
        if self._task is None or self._blocks is None:
            return
        self._blocks.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def shutdown(self) -> None:
        """Stop the worker thread, after any commit it is running."""
        self._executor.shutdown(wait=True)
