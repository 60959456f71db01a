"""A stand-in for a Fabric peer on the chaincode stream, for driving the shim's handler.

:class:`FakePeer` speaks the peer side of ``protos.Chaincode/Connect``: it
answers ``REGISTER`` with ``REGISTERED`` and ``READY`` followed by all its
``TRANSACTION`` messages at once (what a busy peer does), serves
``GET_STATE`` and ``GET_STATE_BY_RANGE`` from a fixed world state (writes
are simulated, never applied, as during endorsement) and collects the
``COMPLETED`` replies.

:class:`StrictStream` is the servicer context the handler writes to. Like a
grpc ``aio`` call it allows one write in flight: a write entered while
another is still sending fails with ``GRPC_CALL_ERROR_TOO_MANY_OPERATIONS``.
Each write yields to the event loop while "sending", as a real one does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2, proposal_response_pb2

Message = chaincode_shim_pb2.ChaincodeMessage
CHANNEL = "accessledger"


class TooManyOperations(RuntimeError):
    """What a grpc call reports when a second write starts before the first finished."""

    def __init__(self) -> None:
        super().__init__("Failed 'execute_batch': GRPC_CALL_ERROR_TOO_MANY_OPERATIONS")


def transaction(
    tx_id: str, args: Sequence[bytes], *, proposal: Any = None, channel: str = CHANNEL
) -> Any:
    """A TRANSACTION message as a peer sends it to the chaincode."""
    message = Message(
        type=Message.TRANSACTION,
        txid=tx_id,
        channel_id=channel,
        payload=chaincode_pb2.ChaincodeInput(args=list(args)).SerializeToString(),
    )
    if proposal is not None:
        message.proposal.CopyFrom(proposal)
    return message


class FakePeer:
    """The peer end of one chaincode stream (see the module docstring)."""

    def __init__(
        self,
        transactions: Sequence[Any],
        state: Mapping[str, bytes] | None = None,
        *,
        namespace: str = "accessledger",
        fail_reads: bool = False,
    ) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.transactions = list(transactions)
        self.state = dict(state or {})
        self.namespace = namespace
        self.fail_reads = fail_reads
        self.writes: dict[str, dict[str, bytes]] = {}
        self.completed: dict[str, Any] = {}
        self.all_completed = asyncio.Event()
        self._queries = 0

    async def stream(self) -> AsyncIterator[Any]:
        """What the chaincode reads: the peer's messages, until :meth:`close`."""
        while True:
            message = await self.inbox.get()
            if message is None:
                return
            yield message

    def close(self) -> None:
        self.inbox.put_nowait(None)

    def _reply(self, request: Any, payload: bytes, kind: int = Message.RESPONSE) -> None:
        self.inbox.put_nowait(
            Message(type=kind, payload=payload, txid=request.txid, channel_id=request.channel_id)
        )

    def receive(self, message: Any) -> None:
        """Handle one message the chaincode sent."""
        kind = message.type
        if kind == Message.REGISTER:
            self.inbox.put_nowait(Message(type=Message.REGISTERED))
            self.inbox.put_nowait(Message(type=Message.READY))
            for tx in self.transactions:
                self.inbox.put_nowait(tx)
        elif kind == Message.GET_STATE:
            if self.fail_reads:
                self._reply(message, b"ledger unavailable", Message.ERROR)
                return
            key = chaincode_shim_pb2.GetState.FromString(message.payload).key
            self._reply(message, self.state.get(key, b""))
        elif kind == Message.PUT_STATE:
            put = chaincode_shim_pb2.PutState.FromString(message.payload)
            self.writes.setdefault(message.txid, {})[put.key] = bytes(put.value)
            self._reply(message, b"")
        elif kind == Message.DEL_STATE:
            self._reply(message, b"")
        elif kind == Message.GET_STATE_BY_RANGE:
            self._range(message)
        elif kind == Message.QUERY_STATE_CLOSE:
            self._reply(message, chaincode_shim_pb2.QueryResponse().SerializeToString())
        elif kind in (Message.COMPLETED, Message.ERROR):
            self.completed[message.txid] = message
            if len(self.completed) == len(self.transactions):
                self.all_completed.set()
        else:
            self._reply(message, f"unexpected message type {kind}".encode(), Message.ERROR)

    def _range(self, message: Any) -> None:
        query = chaincode_shim_pb2.GetStateByRange.FromString(message.payload)
        keys = sorted(
            k for k in self.state if query.startKey <= k and (not query.endKey or k < query.endKey)
        )
        self._queries += 1
        response = chaincode_shim_pb2.QueryResponse(has_more=False, id=f"q{self._queries}")
        for key in keys:
            kv = kv_query_result_pb2.KV(namespace=self.namespace, key=key, value=self.state[key])
            response.results.add(resultBytes=kv.SerializeToString())
        self._reply(message, response.SerializeToString())

    def response(self, tx_id: str) -> Any:
        """The chaincode's ``peer.Response`` for ``tx_id``."""
        return proposal_response_pb2.Response.FromString(self.completed[tx_id].payload)


class StrictStream:
    """A servicer context allowing one write in flight (see the module docstring)."""

    def __init__(self, peer: FakePeer) -> None:
        self.peer = peer
        self.concurrent_writes = 0
        self.writes = 0
        self._sending = False

    async def write(self, message: Any) -> None:
        if self._sending:
            self.concurrent_writes += 1
            raise TooManyOperations()
        self._sending = True
        try:
            # Sending a frame takes a few loop iterations (flow control, the C core's batch).
            for _ in range(3):
                await asyncio.sleep(0)
            self.writes += 1
            self.peer.receive(message)
        finally:
            self._sending = False


async def drive(handler: Any, peer: FakePeer, context: Any, *, timeout: float = 5.0) -> bool:
    """Run ``handler`` against ``peer``; return whether every transaction completed in time."""
    chat = asyncio.create_task(handler.chat_with_peer(peer.stream(), context))
    try:
        await asyncio.wait_for(peer.all_completed.wait(), timeout)
        finished = True
    except TimeoutError:
        finished = False
    peer.close()
    # A handler that lost a reply leaves a transaction waiting forever: cancelled on timeout.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(chat, timeout)
    return finished
