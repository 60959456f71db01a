"""The Fabric Gateway gRPC service, served by the embedded network.

:class:`GatewayServicer` implements ``gateway.Gateway`` (Evaluate, Endorse,
Submit, CommitStatus) over an :class:`~network.engine.network.EmbeddedNetwork`,
so that :class:`~network.connector.GatewayClient` talks to the
embedded engine exactly as it talks to a Fabric peer's gateway. The checks and
the gRPC status codes follow Fabric's ``internal/pkg/gateway`` server:

* **Evaluate / Endorse** -- the ``SignedProposal`` is checked, simulated and
  endorsed by :class:`~network.engine.endorser.Endorser` (creator MSP
  membership, proposal signature, ``/Channel/Application/Writers``). Endorse
  answers with the *prepared transaction*: the unsigned envelope assembled as
  ``protoutil.CreateSignedTx`` does. A chaincode error is ``UNKNOWN`` with
  ``chaincode response <status>, <message>``; any other refusal ``ABORTED``;
  a request that does not decode ``INVALID_ARGUMENT``.
* **Submit** -- the envelope must be signed (``INVALID_ARGUMENT`` otherwise);
  the orderer's broadcast checks (creator signature, ``/Channel/Writers``)
  refuse it with ``ABORTED``, as Fabric reports an orderer's BAD_REQUEST.
* **CommitStatus** -- the ``SignedCommitStatusRequest`` must be signed by the
  identity it names, a valid member of the channel's MSPs satisfying
  ``/Channel/Application/Readers`` (Fabric's ``Gateway_CommitStatus`` ACL);
  otherwise ``PERMISSION_DENIED``. The answer waits for the commit, bounded
  by the call's deadline and the servicer's ``commit_status_timeout``
  (``DEADLINE_EXCEEDED`` then).

Failures carry one ``gateway.ErrorDetail`` (address, MSP ID, message) in the
status details, as Fabric's gateway attaches one per failing node.
``ChaincodeEvents`` is not served (``UNIMPLEMENTED``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from fabric_protos.gateway import gateway_pb2_grpc as _gateway_pb2_grpc
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2
from google.protobuf.message import DecodeError

from crypto.errors import AccessLedgerError, VerificationError
from network.engine.errors import CommitStatusError, EndorseError, EvaluateError, SubmitError
from network.engine.network import DEFAULT_COMMIT_TIMEOUT, EmbeddedNetwork
from network.engine.proposal import Proposal, ProposalError
from network.fabric.errors import MSPError, PolicyNotSatisfiedError
from network.grpc_status import STATUS_DETAILS_KEY, ErrorDetail, encode_status

common_pb2: Any = _common_pb2
gateway_pb2: Any = _gateway_pb2
gateway_pb2_grpc: Any = _gateway_pb2_grpc
proposal_response_pb2: Any = _proposal_response_pb2

#: The channel policy a commit status requester must satisfy (Fabric's ``Gateway_CommitStatus``).
COMMIT_STATUS_ACL = "/Channel/Application/Readers"
#: The address this servicer names in ``ErrorDetail`` when none is given.
DEFAULT_ADDRESS = "embedded"


class _Abort(Exception):
    """A refusal to report as a gRPC status (code, message, details)."""

    def __init__(self, code: Any, message: str, detail: ErrorDetail | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: Sequence[ErrorDetail] = (detail,) if detail is not None else ()


async def _abort(context: Any, refusal: _Abort) -> NoReturn:
    status = encode_status(refusal.code.value[0], refusal.message, refusal.details)
    await context.abort(
        refusal.code, refusal.message, trailing_metadata=((STATUS_DETAILS_KEY, status),)
    )
    raise AssertionError("context.abort returned")  # pragma: no cover -- abort always raises


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):  # type: ignore[misc]
    """``gateway.Gateway`` backed by an embedded network (see the module docstring)."""

    def __init__(
        self,
        network: EmbeddedNetwork,
        *,
        address: str = DEFAULT_ADDRESS,
        commit_status_timeout: float = DEFAULT_COMMIT_TIMEOUT,
    ) -> None:
        self.network = network
        self.address = address
        self.commit_status_timeout = commit_status_timeout

    def _detail(self, message: str, msp_id: str = "") -> ErrorDetail:
        return ErrorDetail(self.address, msp_id, message)

    @staticmethod
    def _proposal(signed: Any) -> Proposal:
        if not signed.proposal_bytes:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the proposed transaction must contain a signed proposal",
            )
        try:
            return Proposal.from_signed(signed)
        except ProposalError as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from exc

    def _proposal_refused(self, exc: EndorseError | EvaluateError, what: str) -> _Abort:
        if exc.status is not None:
            return _Abort(grpc.StatusCode.UNKNOWN, exc.message, self._detail(exc.message))
        return _Abort(
            grpc.StatusCode.ABORTED,
            f"failed to {what} transaction: {exc.message}",
            self._detail(exc.message),
        )

    # -- Evaluate and Endorse --------------------------------------------------------------

    async def Evaluate(self, request: Any, context: Any) -> Any:
        try:
            proposal = self._proposal(request.proposed_transaction)
            try:
                payload = await self.network.evaluate_proposal(proposal)
            except EvaluateError as exc:
                raise self._proposal_refused(exc, "evaluate") from exc
        except _Abort as refusal:
            await _abort(context, refusal)
        return gateway_pb2.EvaluateResponse(
            result=proposal_response_pb2.Response(status=200, payload=payload)
        )

    async def Endorse(self, request: Any, context: Any) -> Any:
        try:
            proposal = self._proposal(request.proposed_transaction)
            orgs = list(request.endorsing_organizations) or None
            try:
                endorsement = await self.network.endorse(proposal, endorsing_orgs=orgs)
                transaction = endorsement.transaction()
            except EndorseError as exc:
                raise self._proposal_refused(exc, "endorse") from exc
            except AccessLedgerError as exc:  # the responses cannot form a transaction
                raise _Abort(
                    grpc.StatusCode.ABORTED, f"failed to assemble transaction: {exc.message}"
                ) from exc
        except _Abort as refusal:
            await _abort(context, refusal)
        return gateway_pb2.EndorseResponse(
            prepared_transaction=common_pb2.Envelope(payload=transaction.payload_bytes)
        )

    # -- Submit ---------------------------------------------------------------------------------

    async def Submit(self, request: Any, context: Any) -> Any:
        try:
            if not request.HasField("prepared_transaction"):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "a prepared transaction is required")
            envelope = request.prepared_transaction
            if not envelope.signature:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed"
                )
            try:
                await self.network.broadcast(envelope.SerializeToString())
            except SubmitError as exc:
                message = f"received unsuccessful response from orderer: {exc.message}"
                raise _Abort(grpc.StatusCode.ABORTED, message, self._detail(exc.message)) from exc
        except _Abort as refusal:
            await _abort(context, refusal)
        return gateway_pb2.SubmitResponse()

    # -- CommitStatus -----------------------------------------------------------------------------

    def _check_commit_status_request(self, signed: Any) -> Any:
        """Decode the request and check who signed it; raise :class:`_Abort` if refused."""
        if not signed.request:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "a commit status request is required")
        try:
            request = gateway_pb2.CommitStatusRequest.FromString(signed.request)
        except DecodeError as exc:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"invalid status request: {exc}"
            ) from exc
        channel = self.network.channel
        if request.channel_id != channel.channel_id:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"channel {request.channel_id!r} not found")
        try:
            identity = channel.msps.deserialize(bytes(request.identity), now=self.network.clock())
            identity.verify(bytes(signed.request), bytes(signed.signature))
            channel.policies.get(COMMIT_STATUS_ACL).evaluate_identities([identity])
        except (MSPError, VerificationError, PolicyNotSatisfiedError) as exc:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"access denied for commit status: {exc.message}",
            ) from exc
        return request

    async def CommitStatus(self, signed: Any, context: Any) -> Any:
        try:
            request = self._check_commit_status_request(signed)
            timeout = self.commit_status_timeout
            remaining = context.time_remaining()
            if remaining is not None:
                timeout = min(timeout, max(remaining, 0.0))
            try:
                status = await self.network.commit_status(request.transaction_id, timeout=timeout)
            except CommitStatusError as exc:
                code = (
                    grpc.StatusCode.DEADLINE_EXCEEDED
                    if self.network.running
                    else grpc.StatusCode.ABORTED
                )
                raise _Abort(code, exc.message, self._detail(exc.message)) from exc
        except _Abort as refusal:
            await _abort(context, refusal)
        return gateway_pb2.CommitStatusResponse(
            result=status.validation_code, block_number=status.block_number
        )


@dataclass
class GatewayServer:
    """A running ``grpc.aio`` server exposing one :class:`GatewayServicer`."""

    server: Any
    port: int
    servicer: GatewayServicer

    @property
    def target(self) -> str:
        """``host:port`` for the loopback interface."""
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)


async def start_gateway_server(
    network: EmbeddedNetwork,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    credentials: Any | None = None,
    commit_status_timeout: float = DEFAULT_COMMIT_TIMEOUT,
) -> GatewayServer:
    """Serve ``network`` as a Fabric Gateway on ``host:port`` (port 0 picks a free one).

    Must run on the network's event loop. Plaintext unless ``credentials``
    (``grpc.ssl_server_credentials``) are given; bind a loopback ``host`` for
    plaintext.
    """
    server = grpc.aio.server()
    servicer = GatewayServicer(
        network, address=f"{host}:{port}", commit_status_timeout=commit_status_timeout
    )
    gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
    address = f"{host}:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    await server.start()
    servicer.address = f"{host}:{bound}"
    return GatewayServer(server=server, port=int(bound), servicer=servicer)
