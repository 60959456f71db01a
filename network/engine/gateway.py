"""A fabric-gateway style client of the embedded network.

The flow and the names follow the Hyperledger Fabric Gateway client API::

    gateway = network.gateway(officer)              # or Gateway(network, creator=..., signer=...)
    result = await gateway.submit("accessledger", "RegisterRecord", [record_json])
    data = await gateway.evaluate("accessledger", "ReadRecord", [record_id])

``submit`` is the four steps a Fabric client goes through, each of which
can be driven separately (for example to let an officer sign in their own
client, the *offline signing* flow, with ``signer=None``):

1. :meth:`Gateway.new_proposal` -- build (and sign) a ``SignedProposal``;
2. :meth:`Gateway.endorse` -- have the endorsing peers simulate and sign;
   raises :class:`~network.engine.errors.EndorseError`;
3. :meth:`Gateway.submit_transaction` -- sign the transaction envelope and
   hand it to the orderer; raises :class:`~network.engine.errors.SubmitError`;
4. :meth:`Commit.status` -- wait until the block holding it is committed;
   raises :class:`~network.engine.errors.CommitStatusError`.

``submit`` then raises :class:`~network.engine.errors.CommitError` (with the
validation code) if the committed transaction is invalid. Every error carries
the transaction id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from crypto.identity import Identity
from crypto.signing import Signer
from network.engine.committer import TxStatus
from network.engine.endorser import Endorsement
from network.engine.errors import CommitError, NetworkClosedError, SubmitError
from network.engine.network import (
    DEFAULT_COMMIT_TIMEOUT,
    Clock,
    EmbeddedNetwork,
    wait_status,
)
from network.engine.proposal import Proposal, Transaction
from network.fabric.validator import code_name


@dataclass(frozen=True)
class SubmitResult:
    """A committed, valid transaction: its id, code (VALID), block and chaincode result."""

    tx_id: str
    validation_code: int
    block_number: int
    payload: bytes = b""

    @property
    def validation_code_name(self) -> str:
        return code_name(self.validation_code)


class Commit:
    """A transaction handed to the orderer, whose commit status can be awaited."""

    def __init__(
        self, network: EmbeddedNetwork, tx_id: str, waiter: asyncio.Future[TxStatus]
    ) -> None:
        self.network = network
        self.tx_id = tx_id
        self._waiter = waiter

    async def status(self, *, timeout: float | None = DEFAULT_COMMIT_TIMEOUT) -> TxStatus:
        """Wait for the transaction's block to be committed; return its status.

        Raises :class:`~network.engine.errors.CommitStatusError` on timeout or
        if the network closes first.
        """
        return await wait_status(self.network, self.tx_id, self._waiter, timeout)


class Gateway:
    """A client connection to an :class:`EmbeddedNetwork`, acting as one identity."""

    def __init__(
        self,
        network: EmbeddedNetwork,
        *,
        creator: bytes,
        signer: Signer | None,
        clock: Clock | None = None,
    ) -> None:
        """``creator`` is the serialized identity; ``signer`` is ``None`` for offline signing."""
        self.network = network
        self.creator = creator
        self.signer = signer
        self.clock = clock or network.clock

    @classmethod
    def for_identity(cls, network: EmbeddedNetwork, identity: Identity) -> Gateway:
        """A gateway signing with ``identity``'s private key."""
        return cls(network, creator=identity.serialized(), signer=identity.signer)

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
        """Build the proposal; signed when this gateway has a signer."""
        proposal = Proposal.build(
            creator=self.creator,
            channel_id=self.network.channel_id,
            chaincode_name=chaincode,
            function=function,
            args=args,
            transient=transient,
            now=now or self.clock(),
        )
        return proposal.sign(self.signer) if self.signer is not None else proposal

    async def endorse(
        self, proposal: Proposal, *, endorsing_orgs: Sequence[str] | None = None
    ) -> Endorsement:
        """Have the proposal endorsed; raises :class:`EndorseError` if it is not."""
        return await self.network.endorse(proposal, endorsing_orgs=endorsing_orgs)

    def sign_transaction(self, endorsement: Endorsement) -> Transaction:
        """The endorsed transaction, signed by this gateway's signer."""
        if self.signer is None:
            raise SubmitError(
                "this gateway has no signer: sign the transaction offline", tx_id=endorsement.tx_id
            )
        return endorsement.transaction().sign(self.signer)

    async def submit_transaction(self, transaction: Transaction) -> Commit:
        """Send a signed transaction to the orderer; raises :class:`SubmitError` if refused."""
        if transaction.signature is None:
            raise SubmitError("transaction is not signed", tx_id=transaction.tx_id)
        try:
            waiter = self.network.commit_waiter(transaction.tx_id, check_ledger=False)
        except NetworkClosedError as exc:
            raise SubmitError(exc.message, tx_id=transaction.tx_id) from exc
        try:
            await self.network.broadcast(transaction.envelope_bytes())
        except SubmitError as exc:
            self.network.forget_waiter(transaction.tx_id, waiter)
            if exc.tx_id:
                raise
            # Refused before the orderer could read it (too large, network closed).
            raise SubmitError(exc.message, tx_id=transaction.tx_id) from exc
        except BaseException:
            self.network.forget_waiter(transaction.tx_id, waiter)
            raise
        return Commit(self.network, transaction.tx_id, waiter)

    async def commit_status(
        self, tx_id: str, *, timeout: float | None = DEFAULT_COMMIT_TIMEOUT
    ) -> TxStatus:
        """The commit status of any transaction id, waiting for it up to ``timeout``."""
        return await self.network.commit_status(tx_id, timeout=timeout)

    # -- the usual calls --------------------------------------------------------------------

    async def submit(
        self,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
        endorsing_orgs: Sequence[str] | None = None,
        commit_timeout: float | None = DEFAULT_COMMIT_TIMEOUT,
    ) -> SubmitResult:
        """Endorse, order and commit a transaction; return once it is committed as VALID.

        Raises the error of the phase that failed -- :class:`EndorseError`,
        :class:`SubmitError`, :class:`CommitStatusError`, or
        :class:`CommitError` for a transaction committed as invalid.
        """
        proposal = self.new_proposal(chaincode, function, args, transient=transient)
        endorsement = await self.endorse(proposal, endorsing_orgs=endorsing_orgs)
        commit = await self.submit_transaction(self.sign_transaction(endorsement))
        status = await commit.status(timeout=commit_timeout)
        if not status.valid:
            raise CommitError(
                tx_id=status.tx_id,
                validation_code=status.validation_code,
                block_number=status.block_number,
            )
        return SubmitResult(
            status.tx_id, status.validation_code, status.block_number, endorsement.payload
        )

    async def evaluate(
        self,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
    ) -> bytes:
        """Run a query against committed state; nothing is ordered or committed.

        Raises :class:`~network.engine.errors.EvaluateError` if the proposal is
        refused or the chaincode answers with an error status.
        """
        proposal = self.new_proposal(chaincode, function, args, transient=transient)
        return await self.network.evaluate_proposal(proposal)
