"""A client of the Fabric Gateway gRPC service (Fabric 2.4+), built on the engine's proposal code.

The same :class:`~network.engine.proposal.Proposal` and
:class:`~network.engine.proposal.Transaction` objects the embedded
:class:`~network.engine.gateway.Gateway` uses travel here over gRPC to a
peer's ``gateway.Gateway`` service (or to
:mod:`network.engine.gateway_server`, which serves the embedded engine
the same way). The flow follows fabric-gateway's ``pkg/client``::

    async with connect("peer0.health:7051", credentials) as channel:
        client = GatewayClient.for_identity(channel, "accessledger", officer)
        result = await client.submit("accessledger", "RegisterRecord", [record_json])

1. :meth:`GatewayClient.new_proposal` -- the signed ``SignedProposal``;
2. :meth:`GatewayClient.endorse` -- ``Endorse(EndorseRequest)``; the gateway
   collects endorsements and returns the *prepared transaction* (an unsigned
   ``common.Envelope``); raises :class:`~network.engine.errors.EndorseError`;
3. :meth:`GatewayClient.sign_transaction` and
   :meth:`GatewayClient.submit_transaction` -- the client signs the envelope
   payload and sends ``Submit(SubmitRequest)``; raises
   :class:`~network.engine.errors.SubmitError`;
4. :meth:`RemoteCommit.status` / :meth:`GatewayClient.commit_status` --
   ``CommitStatus(SignedCommitStatusRequest)``, the request signed by the
   client identity; the gateway answers once the transaction is committed;
   raises :class:`~network.engine.errors.CommitStatusError`.

Every failure is one of the engine's per-phase error types carrying the
transaction id, never a raw gRPC exception; the gRPC code and the gateway's
``ErrorDetail`` entries ride along (``grpc_code``, ``details``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.gateway import gateway_pb2_grpc as _gateway_pb2_grpc

from crypto.identity import Identity
from crypto.signing import Signer
from network.engine.committer import TxStatus
from network.engine.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    EvaluateError,
    GatewayError,
    SubmitError,
)
from network.engine.gateway import SubmitResult
from network.engine.network import Clock
from network.engine.proposal import Proposal, ProposalError, Transaction
from network.fabric.errors import TransactionFormatError
from network.fabric.transactions import parse_envelope
from network.grpc_status import ErrorDetail, decode_details

gateway_pb2: Any = _gateway_pb2
gateway_pb2_grpc: Any = _gateway_pb2_grpc

#: fabric-gateway's default call timeouts (seconds).
DEFAULT_EVALUATE_TIMEOUT = 5.0
DEFAULT_ENDORSE_TIMEOUT = 15.0
DEFAULT_SUBMIT_TIMEOUT = 5.0
DEFAULT_COMMIT_STATUS_TIMEOUT = 60.0

_CHAINCODE_STATUS = re.compile(r"chaincode response (\d+),")


class RemoteEndorseError(EndorseError):
    """An Endorse call failed at the gateway (see ``grpc_code`` and ``details``)."""

    grpc_code: grpc.StatusCode | None = None
    details: tuple[ErrorDetail, ...] = ()


class RemoteEvaluateError(EvaluateError):
    """An Evaluate call failed at the gateway (see ``grpc_code`` and ``details``)."""

    grpc_code: grpc.StatusCode | None = None
    details: tuple[ErrorDetail, ...] = ()


class RemoteSubmitError(SubmitError):
    """A Submit call failed at the gateway (see ``grpc_code`` and ``details``)."""

    grpc_code: grpc.StatusCode | None = None
    details: tuple[ErrorDetail, ...] = ()


class RemoteCommitStatusError(CommitStatusError):
    """A CommitStatus call failed at the gateway (see ``grpc_code`` and ``details``)."""

    grpc_code: grpc.StatusCode | None = None
    details: tuple[ErrorDetail, ...] = ()


_RemoteError = (
    RemoteEndorseError | RemoteEvaluateError | RemoteSubmitError | RemoteCommitStatusError
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _chaincode_status(texts: Sequence[str]) -> int | None:
    """The chaincode status in Fabric's ``chaincode response <status>, <message>`` text."""
    for text in texts:
        match = _CHAINCODE_STATUS.search(text)
        if match:
            return int(match.group(1))
    return None


def _from_rpc(kind: type[_RemoteError], exc: grpc.aio.AioRpcError, tx_id: str) -> _RemoteError:
    """The phase error for a failed gRPC call: its message, code and ``ErrorDetail``s."""
    found = decode_details(exc.trailing_metadata())
    text = str(exc.details() or exc.code().name)
    message = text + (" [" + "; ".join(str(d) for d in found) + "]" if found else "")
    error = kind(message, tx_id=tx_id)
    if isinstance(error, RemoteEndorseError | RemoteEvaluateError):
        error.status = _chaincode_status([text, *(d.message for d in found)])
    error.grpc_code = exc.code()
    error.details = found
    return error


@dataclass(frozen=True)
class PreparedTransaction:
    """What Endorse returns: the unsigned transaction and the chaincode's result."""

    transaction: Transaction
    result: bytes

    @property
    def tx_id(self) -> str:
        return self.transaction.tx_id


class RemoteCommit:
    """A submitted transaction whose commit status can be asked of the gateway."""

    def __init__(self, client: GatewayClient, tx_id: str) -> None:
        self.client = client
        self.tx_id = tx_id

    async def status(self, *, timeout: float | None = DEFAULT_COMMIT_STATUS_TIMEOUT) -> TxStatus:
        """Wait until the transaction is committed; see :meth:`GatewayClient.commit_status`."""
        return await self.client.commit_status(self.tx_id, timeout=timeout)


def connect(target: str, credentials: Any | None = None) -> Any:
    """A ``grpc.aio`` channel to a gateway (TLS with ``credentials``; plaintext without)."""
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)


class GatewayClient:
    """A connection to a Fabric Gateway service for one channel, acting as one identity."""

    def __init__(
        self,
        channel: Any,
        *,
        channel_id: str,
        creator: bytes,
        signer: Signer | None,
        clock: Clock | None = None,
        evaluate_timeout: float | None = DEFAULT_EVALUATE_TIMEOUT,
        endorse_timeout: float | None = DEFAULT_ENDORSE_TIMEOUT,
        submit_timeout: float | None = DEFAULT_SUBMIT_TIMEOUT,
    ) -> None:
        """``channel`` is a ``grpc.aio.Channel``; ``signer`` is ``None`` for offline signing."""
        self.stub: Any = gateway_pb2_grpc.GatewayStub(channel)
        self.channel_id = channel_id
        self.creator = creator
        self.signer = signer
        self.clock = clock or _utc_now
        self.evaluate_timeout = evaluate_timeout
        self.endorse_timeout = endorse_timeout
        self.submit_timeout = submit_timeout

    @classmethod
    def for_identity(cls, channel: Any, channel_id: str, identity: Identity) -> GatewayClient:
        """A client signing with ``identity``'s private key."""
        return cls(
            channel, channel_id=channel_id, creator=identity.serialized(), signer=identity.signer
        )

    # -- the four steps ------------------------------------------------------------------

    def new_proposal(
        self,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
        now: datetime | None = None,
    ) -> Proposal:
        """Build the proposal; signed when this client has a signer."""
        proposal = Proposal.build(
            creator=self.creator,
            channel_id=self.channel_id,
            chaincode_name=chaincode,
            function=function,
            args=args,
            transient=transient,
            now=now or self.clock(),
        )
        return proposal.sign(self.signer) if self.signer is not None else proposal

    @staticmethod
    def _signed(proposal: Proposal, kind: type[GatewayError]) -> Any:
        try:
            return proposal.signed_proposal()
        except ProposalError as exc:
            raise kind(exc.message, tx_id=proposal.tx_id) from exc

    async def endorse(
        self, proposal: Proposal, *, endorsing_orgs: Sequence[str] | None = None
    ) -> PreparedTransaction:
        """Have the gateway endorse ``proposal``; raises :class:`EndorseError` if it does not.

        The prepared transaction must be the proposal's own (same tx id and
        creator): a client never signs a transaction it did not propose.
        """
        request = gateway_pb2.EndorseRequest(
            transaction_id=proposal.tx_id,
            channel_id=proposal.channel_id,
            proposed_transaction=self._signed(proposal, EndorseError),
            endorsing_organizations=list(endorsing_orgs or ()),
        )
        try:
            response = await self.stub.Endorse(request, timeout=self.endorse_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc(RemoteEndorseError, exc, proposal.tx_id) from None
        payload = bytes(response.prepared_transaction.payload)
        try:
            parsed = parse_envelope(response.prepared_transaction.SerializeToString())
        except TransactionFormatError as exc:
            raise EndorseError(
                f"gateway returned a malformed prepared transaction: {exc.message}",
                tx_id=proposal.tx_id,
            ) from exc
        if parsed.tx_id != proposal.tx_id or parsed.creator != proposal.creator:
            raise EndorseError(
                "gateway returned a prepared transaction that is not this proposal's",
                tx_id=proposal.tx_id,
            )
        result = parsed.action.response.payload if parsed.action is not None else b""
        return PreparedTransaction(Transaction(payload_bytes=payload, tx_id=proposal.tx_id), result)

    def sign_transaction(self, prepared: PreparedTransaction) -> Transaction:
        """The prepared transaction signed by this client's signer."""
        if self.signer is None:
            raise SubmitError(
                "this client has no signer: sign the transaction offline", tx_id=prepared.tx_id
            )
        return prepared.transaction.sign(self.signer)

    async def submit_transaction(self, transaction: Transaction) -> RemoteCommit:
        """Send a signed transaction for ordering; raises :class:`SubmitError` if refused."""
        try:
            envelope = transaction.envelope()
        except ProposalError as exc:
            raise SubmitError(exc.message, tx_id=transaction.tx_id) from exc
        request = gateway_pb2.SubmitRequest(
            transaction_id=transaction.tx_id,
            channel_id=self.channel_id,
            prepared_transaction=envelope,
        )
        try:
            await self.stub.Submit(request, timeout=self.submit_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc(RemoteSubmitError, exc, transaction.tx_id) from None
        return RemoteCommit(self, transaction.tx_id)

    def commit_status_request(self, tx_id: str) -> bytes:
        """The serialized ``CommitStatusRequest`` this client's identity signs."""
        request = gateway_pb2.CommitStatusRequest(
            transaction_id=tx_id, channel_id=self.channel_id, identity=self.creator
        )
        data: bytes = request.SerializeToString()
        return data

    async def commit_status(
        self,
        tx_id: str,
        *,
        timeout: float | None = DEFAULT_COMMIT_STATUS_TIMEOUT,
        signature: bytes | None = None,
    ) -> TxStatus:
        """The commit status of ``tx_id``, waiting for its commit up to ``timeout`` seconds.

        The request is signed by this client's signer, or carries
        ``signature`` (over :meth:`commit_status_request`) made offline.
        Raises :class:`CommitStatusError` if refused or not committed in time.
        """
        request_bytes = self.commit_status_request(tx_id)
        if signature is None:
            if self.signer is None:
                raise CommitStatusError(
                    "this client has no signer: sign the commit status request offline",
                    tx_id=tx_id,
                )
            signature = self.signer(request_bytes)
        signed = gateway_pb2.SignedCommitStatusRequest(request=request_bytes, signature=signature)
        try:
            response = await self.stub.CommitStatus(signed, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc(RemoteCommitStatusError, exc, tx_id) from None
        return TxStatus(tx_id, int(response.result), int(response.block_number))

    # -- the usual calls --------------------------------------------------------------------

    async def submit(
        self,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
        endorsing_orgs: Sequence[str] | None = None,
        commit_timeout: float | None = DEFAULT_COMMIT_STATUS_TIMEOUT,
    ) -> SubmitResult:
        """Endorse, submit and wait for the commit; return once committed as VALID.

        Raises the error of the phase that failed, or :class:`CommitError`
        for a transaction committed as invalid.
        """
        proposal = self.new_proposal(chaincode, function, args, transient=transient)
        prepared = await self.endorse(proposal, endorsing_orgs=endorsing_orgs)
        commit = await self.submit_transaction(self.sign_transaction(prepared))
        status = await commit.status(timeout=commit_timeout)
        if not status.valid:
            raise CommitError(
                tx_id=status.tx_id,
                validation_code=status.validation_code,
                block_number=status.block_number,
            )
        return SubmitResult(
            status.tx_id, status.validation_code, status.block_number, prepared.result
        )

    async def evaluate_proposal(
        self, proposal: Proposal, *, target_orgs: Sequence[str] | None = None
    ) -> bytes:
        """Run a signed query proposal; return the chaincode's response payload."""
        request = gateway_pb2.EvaluateRequest(
            transaction_id=proposal.tx_id,
            channel_id=proposal.channel_id,
            proposed_transaction=self._signed(proposal, EvaluateError),
            target_organizations=list(target_orgs or ()),
        )
        try:
            response = await self.stub.Evaluate(request, timeout=self.evaluate_timeout)
        except grpc.aio.AioRpcError as exc:
            raise _from_rpc(RemoteEvaluateError, exc, proposal.tx_id) from None
        return bytes(response.result.payload)

    async def evaluate(
        self,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
        target_orgs: Sequence[str] | None = None,
    ) -> bytes:
        """Run a query against committed state; nothing is ordered or committed."""
        proposal = self.new_proposal(chaincode, function, args, transient=transient)
        return await self.evaluate_proposal(proposal, target_orgs=target_orgs)


__all__ = [
    "DEFAULT_COMMIT_STATUS_TIMEOUT",
    "ErrorDetail",
    "GatewayClient",
    "PreparedTransaction",
    "RemoteCommit",
    "RemoteCommitStatusError",
    "RemoteEndorseError",
    "RemoteEvaluateError",
    "RemoteSubmitError",
    "connect",
]
