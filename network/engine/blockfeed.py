"""The embedded network's block feed: committed blocks for readers, stored ones then new ones.

A reader (:meth:`EmbeddedNetwork.blocks <network.engine.network.EmbeddedNetwork.blocks>`,
and through it chaincode events and the gateway's block stream) first gets
the blocks already in the store, then waits for the next commit. The network
calls :meth:`BlockFeed.wake` after every commit and when it stops, which
wakes all waiting readers at once: each wait is on an ``asyncio.Event`` that
is replaced as it is set, so no reader misses a block or spins.

It lives apart from :mod:`network.engine.network` because it only consumes
what the network produces (the store's height, its life-cycle state), which
the network passes in as small callables, and keeps one piece of state of its
own (the current event).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from network.engine.statedb import StateDB
from network.fabric.blocks import parse_block


class BlockFeed:
    """Committed blocks of one store for any number of readers (see the module docstring)."""

    def __init__(
        self,
        store: StateDB,
        *,
        closed: Callable[[], bool],
        stopping: Callable[[], bool],
        bind: Callable[[], None],
    ) -> None:
        """``closed``: the store is closed, stop now; ``stopping``: no more blocks will come
        (closing, or stopped by a failure), stop once caught up; ``bind``: bind the network to
        the running event loop (which calls :meth:`start`), or raise if it cannot run.
        """
        self._store = store
        self._closed = closed
        self._stopping = stopping
        self._bind = bind
        self._new_block: asyncio.Event | None = None

    def start(self) -> None:
        """Begin signalling commits (the network is now bound to the running event loop)."""
        self._new_block = asyncio.Event()

    def wake(self) -> None:
        """Wake every waiting reader: a block was committed, or the network stops."""
        if self._new_block is not None:
            self._new_block.set()
            self._new_block = asyncio.Event()

    async def follow(self, from_height: int) -> AsyncIterator[Any]:
        """Yield committed blocks from ``from_height`` on; end when the network closes."""
        number = from_height
        while True:
            if self._closed():
                return
            event = self._new_block
            height = self._store.height
            if number < height:
                for _, data in self._store.iter_blocks(number, height):
                    yield parse_block(data)
                    number += 1
                continue
            if self._stopping():
                return
            if event is None:
                self._bind()
                continue
            await event.wait()
