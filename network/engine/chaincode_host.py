"""Run a fabric-chaincode-python chaincode in-process against the engine's state.

The Python shim normally drives a chaincode from its gRPC ``Handler``: it
builds a ``ChaincodeStub`` from the peer's message and awaits
``chaincode.init(stub)`` or ``chaincode.invoke(stub)``, which return a
``peer.Response``. The contract API plugs into exactly that entry point:
``ContractChaincode`` *is* a ``Chaincode`` whose ``invoke(stub)`` routes
``"[Contract:]function"`` to the contract method, converts arguments from
strings, serializes the return value and maps exceptions to error responses.
:class:`ChaincodeHost` calls the same entry point with the engine's
:class:`~network.engine.stub.ChaincodeStub`, so either style runs unchanged.

Like a Fabric peer, the host turns anything that is not a proper response
into an error response rather than letting it escape: an exception (status
500 with the exception text), a missing or status-less response (the shim's
"has not called success or error") and a timeout (Fabric's execute timeout).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2

from crypto.errors import AccessLedgerError
from network.engine.proposal import Proposal
from network.engine.statedb import StateReader
from network.engine.stub import ChaincodeStub, SimulationResult

proposal_response_pb2: Any = _proposal_response_pb2

#: The shim's ``ResponseCode.ERROR``.
ERROR_STATUS = 500
#: Fabric's default ``chaincode.executetimeout``.
DEFAULT_TIMEOUT = 30.0
_CONTRACT_API = "fabric_chaincode_python.fabric_contract_api"


class ChaincodeHostError(AccessLedgerError):
    """The host cannot run this chaincode or this proposal (wrong chaincode, bad object)."""

    code = "chaincode_host_error"


def _error(message: str) -> Any:
    return proposal_response_pb2.Response(status=ERROR_STATUS, message=message)


def _as_chaincode(chaincode: object) -> Any:
    """Return an object with ``init(stub)``/``invoke(stub)``, wrapping contracts if needed."""
    # The contract API configures logging when first imported, so only touch it
    # when the caller already has (their contracts come from it).
    if _CONTRACT_API in sys.modules:
        from fabric_chaincode_python.fabric_contract_api import (
            ContractChaincode,
            ContractInterface,
        )

        if isinstance(chaincode, ContractInterface):
            return ContractChaincode.new_chaincode(chaincode)
        if (
            isinstance(chaincode, Sequence)
            and chaincode
            and all(isinstance(c, ContractInterface) for c in chaincode)
        ):
            return ContractChaincode.new_chaincode(*chaincode)
    if callable(getattr(chaincode, "invoke", None)) and callable(getattr(chaincode, "init", None)):
        return chaincode
    raise ChaincodeHostError(
        f"{type(chaincode).__name__} is neither a Chaincode (init/invoke) nor contracts"
    )


class ChaincodeHost:
    """One installed chaincode: its name, version and the object that runs it.

    ``chaincode`` is a low-level ``fabric_shim`` ``Chaincode`` (class or
    instance; ``init``/``invoke`` may be async or plain functions), a
    ``ContractChaincode``, or one or more contract API ``Contract`` instances.
    """

    def __init__(
        self,
        chaincode: object,
        *,
        name: str,
        version: str = "1.0",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        if not name:
            raise ChaincodeHostError("chaincode name is required")
        self.name = name
        self.version = version
        self.timeout = timeout
        #: What was installed, so the same chaincode can be built elsewhere (worker processes).
        self.source = chaincode
        self._chaincode = _as_chaincode(chaincode)

    async def execute(self, proposal: Proposal, state: StateReader) -> SimulationResult:
        """Simulate ``proposal`` on ``state``: ``init`` if its input says so, else ``invoke``."""
        if proposal.chaincode_name != self.name:
            raise ChaincodeHostError(
                f"proposal {proposal.tx_id} calls chaincode {proposal.chaincode_name!r},"
                f" not {self.name!r}"
            )
        stub = ChaincodeStub(proposal, state, namespace=self.name)
        method = "Init" if proposal.is_init else "Invoke"
        entry = self._chaincode.init if proposal.is_init else self._chaincode.invoke
        try:
            outcome = entry(stub)
            if inspect.isawaitable(outcome):
                # Runs in the caller's task: no task per simulation, as wait_for would make.
                async with asyncio.timeout(self.timeout):
                    outcome = await outcome
        except TimeoutError:
            response = _error(f"timeout expired while executing transaction ({method})")
        except Exception as exc:
            response = _error(f"chaincode {method}() failed: {exc}")
        else:
            response = self._checked(outcome, method)
        return stub.simulation_result(response)

    @staticmethod
    def _checked(outcome: Any, method: str) -> Any:
        if not isinstance(outcome, proposal_response_pb2.Response) or not outcome.status:
            return _error(f"Calling chaincode {method}() has not called success or error.")
        return outcome

    async def invoke(
        self,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        state: StateReader,
        creator: bytes,
        channel_id: str,
        now: datetime,
        transient: Mapping[str, bytes] | None = None,
        is_init: bool = False,
    ) -> SimulationResult:
        """Simulate ``function(*args)`` called by ``creator`` (a serialized identity).

        A convenience for evaluation and tests: it builds the same (unsigned)
        proposal a client would send and runs :meth:`execute`.
        """
        proposal = Proposal.build(
            creator=creator,
            channel_id=channel_id,
            chaincode_name=self.name,
            function=function,
            args=args,
            transient=transient,
            now=now,
            is_init=is_init,
        )
        return await self.execute(proposal, state)
