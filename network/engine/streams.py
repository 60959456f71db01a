"""What a reader of the embedded network streams or awaits: chaincode events and commit status.

:meth:`EmbeddedNetwork.chaincode_events <network.engine.network.EmbeddedNetwork.chaincode_events>`
turns the network's block stream into :class:`ChaincodeEventInfo` records, and
:func:`wait_status` awaits a commit waiter with a timeout. They live apart
from :mod:`network.engine.network` because they only consume what the
network produces (blocks, waiter futures) and hold none of its state, which
keeps the network module to wiring and the pipeline's life cycle. Both names
stay importable from :mod:`network.engine.network`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from network.engine.committer import TxStatus
from network.engine.errors import CommitStatusError
from network.engine.statedb import VALID
from network.fabric.blocks import transactions_filter
from network.fabric.transactions import ENDORSER_TRANSACTION, parse_envelope

if TYPE_CHECKING:
    from network.engine.network import EmbeddedNetwork

__all__ = ["ChaincodeEventInfo", "chaincode_events_in", "wait_status"]


@dataclass(frozen=True)
class ChaincodeEventInfo:
    """A chaincode event of a committed, valid transaction."""

    block_number: int
    tx_id: str
    chaincode_name: str
    event_name: str
    payload: bytes


async def chaincode_events_in(
    blocks: AsyncIterator[Any], chaincode: str | None = None
) -> AsyncIterator[ChaincodeEventInfo]:
    """Yield the events of valid endorser transactions in ``blocks``, of one chaincode or all."""
    async for block in blocks:
        codes = transactions_filter(block)
        for index, raw in enumerate(block.data.data):
            if index >= len(codes) or codes[index] != VALID:
                continue
            tx = parse_envelope(bytes(raw))
            if tx.header_type != ENDORSER_TRANSACTION or tx.action is None:
                continue
            event = tx.action.event
            if event is None or (chaincode is not None and event.chaincode_id != chaincode):
                continue
            yield ChaincodeEventInfo(
                int(block.header.number),
                tx.tx_id,
                event.chaincode_id,
                event.event_name,
                event.payload,
            )


async def wait_status(
    network: EmbeddedNetwork,
    tx_id: str,
    waiter: asyncio.Future[TxStatus],
    timeout: float | None,
) -> TxStatus:
    """Await a commit waiter, turning a timeout into :class:`CommitStatusError`."""
    try:
        # asyncio.timeout, not wait_for: no extra future and callbacks per submit.
        async with asyncio.timeout(timeout):
            return await asyncio.shield(waiter)
    except TimeoutError:
        network.forget_waiter(tx_id, waiter)
        raise CommitStatusError(
            f"transaction {tx_id} not committed within {timeout} s", tx_id=tx_id
        ) from None
