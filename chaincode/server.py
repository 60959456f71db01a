"""Chaincode-as-a-service: the AccessLedger contract served to Fabric peers over gRPC.

Fabric's CCaaS builder starts no process; the operator runs this server and
the peer connects to it (``connection.json`` names the address). Settings
come from the environment, as the builder's documentation and the Fabric
samples use them:

=========================  ===================================================
``CHAINCODE_SERVER_ADDRESS``  listen address, e.g. ``0.0.0.0:9999`` (required)
``CHAINCODE_ID``              package id from ``peer lifecycle chaincode install``
                              (required)
``CHAINCODE_TLS_DISABLED``    ``true`` to serve without TLS even if files are set
``CHAINCODE_TLS_KEY``         path of the server's TLS private key (PEM)
``CHAINCODE_TLS_CERT``        path of the server's TLS certificate (PEM)
``CHAINCODE_CLIENT_CA_CERT``  path of the CA certificate(s) peers' client certs must
                              chain to; setting it turns on mutual TLS
=========================  ===================================================

Two defects of fabric-chaincode-python 2.5.4 are worked around here, not in
the contract:

* **Concurrent writes on the stream.** The shim handles every peer message in
  its own task and each task writes to the gRPC stream directly. A grpc
  ``aio`` call allows one write in flight; a second concurrent write fails with
  ``GRPC_CALL_ERROR_TOO_MANY_OPERATIONS``, the reply is lost and the peer times
  the transaction out -- which happened when a peer sent two transactions at
  once. :class:`SerialisedStream` puts an ``asyncio.Lock`` around ``write`` and
  :class:`ChaincodeHandler` routes every write through it.
* **Logging personal data.** The shim configures the root logger at DEBUG and
  logs each whole proposal (creator certificates included) at INFO.
  :func:`configure_logging` puts the library's loggers at WARNING, and
  :class:`ChaincodeHandler` runs its own receive loop that does not format
  proposals at all.

:class:`ChaincodeHandler` also fixes two smaller shim gaps: a chaincode event
set with ``stub.set_event`` is sent to the peer in the ``COMPLETED`` message
(the shim drops it), and an ``ERROR`` reply of the peer to ``GetState`` or
``PutState`` fails the call instead of being returned as if it were data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from fabric_chaincode_python.fabric_shim import handler as _shim_handler
from fabric_chaincode_python.fabric_shim.stub import ChaincodeStub
from fabric_protos.peer import chaincode_pb2 as _chaincode_pb2
from fabric_protos.peer import chaincode_shim_pb2 as _chaincode_shim_pb2
from fabric_protos.peer import chaincode_shim_pb2_grpc as _chaincode_shim_grpc
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2

from chaincode.contract import AccessLedgerChaincode
from crypto.errors import AccessLedgerError

chaincode_pb2: Any = _chaincode_pb2
shim_pb2: Any = _chaincode_shim_pb2
shim_grpc: Any = _chaincode_shim_grpc
proposal_response_pb2: Any = _proposal_response_pb2
Message: Any = shim_pb2.ChaincodeMessage

#: Loggers of fabric-chaincode-python (its LOGGER is the "asyncio" logger) and gRPC.
LIBRARY_LOGGERS: Final = ("asyncio", "fabric_chaincode_python", "grpc")
#: Seconds running transactions get to finish when the server is asked to stop.
SHUTDOWN_GRACE: Final = 5.0
_ERROR_STATUS: Final = 500

logger = logging.getLogger("chaincode.server")


class ServerConfigError(AccessLedgerError):
    """The CCaaS environment is incomplete or names unreadable TLS files."""

    code = "chaincode_server_config"


def configure_logging(level: int = logging.INFO) -> None:
    """WARNING for the shim and gRPC (and the root logger the shim set to DEBUG)."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("chaincode").setLevel(level)


class SerialisedStream:
    """A stream context whose ``write`` calls never overlap (one asyncio.Lock per stream)."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = asyncio.Lock()

    async def write(self, message: Any) -> None:
        async with self._lock:
            await self._context.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class PeerError(Exception):
    """The peer answered a chaincode request (GetState, PutState, ...) with ERROR."""


class _PeerRequests:
    """The chaincode's requests to the peer: per transaction, one in flight at a time.

    Replaces the shim's ``MsgQueueHandler`` (same ``queue_msg`` /
    ``handle_msg_response`` interface, same ``QueueMessage`` objects) so that a
    peer ``ERROR`` fails the waiting call and a failed write does not stall
    the transaction's queue.
    """

    def __init__(self, stream: SerialisedStream) -> None:
        self._stream = stream
        self._queues: dict[str, deque[Any]] = {}

    async def queue_msg(self, message: Any) -> None:
        key = message.get_msg_txContextId()
        queue = self._queues.setdefault(key, deque())
        queue.append(message)
        if len(queue) == 1:
            await self._send_head(key)

    async def _send_head(self, key: str) -> None:
        queue = self._queues.get(key)
        while queue:
            message = queue[0]
            try:
                await self._stream.write(message.get_msg())
                return
            except Exception as exc:
                queue.popleft()
                if not message.future.done():
                    message.future.set_exception(PeerError(f"sending to the peer failed: {exc}"))
        self._queues.pop(key, None)

    async def handle_msg_response(self, response: Any) -> None:
        key = response.channel_id + response.txid
        queue = self._queues.get(key)
        if not queue:
            logger.warning("peer response for a transaction with no pending request")
            return
        message = queue.popleft()
        if not message.future.done():
            if response.type == Message.ERROR:
                detail = bytes(response.payload).decode("utf-8", "replace")
                message.future.set_exception(PeerError(f"{message.get_method()}: {detail}"))
            else:
                message.future.set_result(response)
        if queue:
            await self._send_head(key)
        else:
            self._queues.pop(key, None)


class ChaincodeHandler(_shim_handler.Handler):  # type: ignore[misc]
    """The shim's stream handler with serialised writes (see the module docstring)."""

    async def chat_with_peer(
        self, stream: AsyncIterable[Any], context: Any
    ) -> Any:  # the shim's signature
        """Register with the peer, then handle each incoming message in its own task."""
        self.state = _shim_handler.STATES.CREATED
        self.context = SerialisedStream(context)
        self.msg_queue_handler = _PeerRequests(self.context)
        register = Message(type=Message.REGISTER, payload=self.chaincode_id.SerializeToString())
        await self.context.write(register)
        async for message in stream:
            if message is None:
                break
            # Replies to in-flight requests arrive on this same stream, so the
            # loop must keep reading while transactions run.
            self._track_task(self.handle_message(message))
        if self._pending_tasks:
            await asyncio.gather(*self._pending_tasks, return_exceptions=True)

    async def handle_message(self, message: Any) -> None:
        """Dispatch by handler state; unlike the shim, log nothing per message."""
        if message.type == Message.KEEPALIVE:
            return
        if self.state == _shim_handler.STATES.READY:
            await self.handle_message_ready(message)
        elif self.state == _shim_handler.STATES.ESTABLISHED:
            await self.handle_message_established(message)
        else:
            await self.handle_message_created(message)

    async def handle_stub_interaction(self, message: Any, action: str = "Invoke") -> None:
        """Run Init or Invoke and send COMPLETED with the response and the chaincode event."""
        response: Any = None
        stub: Any = None
        try:
            cc_input = chaincode_pb2.ChaincodeInput.FromString(message.payload)
            stub = ChaincodeStub(self, message.channel_id, message.txid, cc_input, message.proposal)
            entry = self.chaincode.init if action.lower() == "init" else self.chaincode.invoke
            response = await entry(stub)
        except Exception as exc:
            logger.error("transaction failed in the shim with %s", type(exc).__name__)
            response = proposal_response_pb2.Response(
                status=_ERROR_STATUS, message=f"chaincode {action} failed ({type(exc).__name__})"
            )
        if response is None or not response.status:
            response = proposal_response_pb2.Response(
                status=_ERROR_STATUS,
                message=f"Calling chaincode {action}() has not called success or error.",
            )
        completed = Message(
            type=Message.COMPLETED,
            payload=response.SerializeToString(),
            txid=message.txid,
            channel_id=message.channel_id,
        )
        events = stub.get_events() if stub is not None else []
        if events and response.status < 400:
            completed.chaincode_event.CopyFrom(events[-1])
        await self.context.write(completed)


class ChaincodeService(shim_grpc.ChaincodeServicer):  # type: ignore[misc]
    """The ``protos.Chaincode`` gRPC service: one :class:`ChaincodeHandler` per peer stream."""

    def __init__(self, chaincode_id: str, chaincode: Any) -> None:
        self._chaincode_id = chaincode_id
        self._chaincode = chaincode

    async def Connect(self, request_iterator: AsyncIterable[Any], context: Any) -> None:
        handler = ChaincodeHandler(self._chaincode_id, self._chaincode)
        await handler.chat_with_peer(request_iterator, context)


@dataclass(frozen=True)
class ServerSettings:
    """Where to listen, which package id to register, and the optional TLS material."""

    address: str
    chaincode_id: str
    tls_key: bytes | None = None
    tls_cert: bytes | None = None
    client_ca: bytes | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        address = env.get("CHAINCODE_SERVER_ADDRESS", "").strip()
        chaincode_id = env.get("CHAINCODE_ID", "").strip()
        if not address:
            raise ServerConfigError("CHAINCODE_SERVER_ADDRESS is not set (e.g. 0.0.0.0:9999)")
        if not chaincode_id:
            raise ServerConfigError("CHAINCODE_ID is not set (the installed package id)")
        if env.get("CHAINCODE_TLS_DISABLED", "").strip().lower() in ("1", "true", "yes"):
            return cls(address=address, chaincode_id=chaincode_id)
        key = _read_optional(env, "CHAINCODE_TLS_KEY")
        cert = _read_optional(env, "CHAINCODE_TLS_CERT")
        client_ca = _read_optional(env, "CHAINCODE_CLIENT_CA_CERT")
        if (key is None) != (cert is None):
            raise ServerConfigError("set both CHAINCODE_TLS_KEY and CHAINCODE_TLS_CERT, or neither")
        if client_ca is not None and key is None:
            raise ServerConfigError("CHAINCODE_CLIENT_CA_CERT needs CHAINCODE_TLS_KEY and _CERT")
        return cls(address, chaincode_id, key, cert, client_ca)

    def credentials(self) -> Any | None:
        """gRPC server credentials, or ``None`` for plaintext."""
        if self.tls_key is None or self.tls_cert is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.tls_key, self.tls_cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def _read_optional(env: Mapping[str, str], name: str) -> bytes | None:
    path = env.get(name, "").strip()
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ServerConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None


async def start_server(settings: ServerSettings, chaincode: Any | None = None) -> tuple[Any, int]:
    """Start serving ``chaincode`` (default: AccessLedger); return the server and bound port."""
    server = grpc.aio.server()
    shim_grpc.add_ChaincodeServicer_to_server(
        ChaincodeService(settings.chaincode_id, chaincode or AccessLedgerChaincode()), server
    )
    credentials = settings.credentials()
    if credentials is None:
        port = server.add_insecure_port(settings.address)
    else:
        port = server.add_secure_port(settings.address, credentials)
    if not port:
        raise ServerConfigError(f"cannot listen on {settings.address}")
    await server.start()
    return server, port


async def serve(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT, then let running transactions finish."""
    server, port = await start_server(settings)
    logger.info(
        "AccessLedger chaincode %s serving on %s (port %d, TLS %s)",
        settings.chaincode_id,
        settings.address,
        port,
        "mutual" if settings.client_ca else "on" if settings.tls_key else "off",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("stopping")
    await server.stop(SHUTDOWN_GRACE)


def main(env: Mapping[str, str] | None = None) -> int:
    """``python -m chaincode``: configure logging, read the environment, serve."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_logging()
    try:
        settings = ServerSettings.from_env(os.environ if env is None else env)
    except ServerConfigError as exc:
        logger.error("%s", exc.message)
        return 2
    asyncio.run(serve(settings))
    return 0
