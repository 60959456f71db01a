"""Endorsement: check a signed proposal, simulate the chaincode, have peers sign the result.

This is the "execute" step of Fabric's execute-order-validate flow, as a
Fabric peer's endorser and the Fabric Gateway's endorsement planning do it:

1. **Check the SignedProposal** (Fabric's ``ValidateProposalMessage`` plus
   the ``peer/Propose`` ACL): a chaincode-call header on this channel, nonce
   and creator present, ``tx_id == SHA-256(nonce || creator)``, the creator's
   certificate chains to an MSP of the channel config and is valid now, the
   signature over the proposal bytes verifies, the creator satisfies
   ``/Channel/Application/Writers``, the chaincode is installed and the
   transaction id is not already on the ledger (asked of the read snapshot,
   so a block being committed never stalls endorsement).
2. **Simulate** the chaincode once against a snapshot of committed state,
   giving the response, the read-write set and the event.
3. **Endorse**: each selected peer signs ``ProposalResponsePayload || endorser``
   (Fabric's default ESCC). A chaincode error response (status >= 400) is
   never endorsed: it is an :class:`~network.engine.errors.EndorseError` and
   no transaction is created, as in Fabric.

**One simulation, several signatures.** On Fabric every endorsing peer
simulates independently against its own copy of the state, and the client
only builds a transaction if the payloads agree bit for bit. In the embedded
engine all peers share one state database, so independent simulations
would be the same computation over the same snapshot; the engine simulates
once and has each selected peer sign the identical payload. What a
validator sees -- one payload, one endorsement per peer, each verifiable
against that peer's certificate -- is exactly what Fabric produces.

**Which peers endorse.** The smallest set of peers (one per organisation)
whose signatures satisfy the channel's endorsement policy, trying the
creator's own organisation first, then the *preferred* organisations
(by default the audit department), then the rest in topology order. With the
default ``OutOf(2, ...)`` policy an officer's write is endorsed by its own
department and by Audit, so every write carries the signature of an
organisation independent of the writer. A client may name the endorsing
organisations instead (fabric-gateway's ``endorsing_organizations``); the
validator then decides whether they satisfy the policy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fabric_protos.peer import proposal_pb2 as _proposal_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2
from google.protobuf.message import DecodeError

from crypto.errors import AccessLedgerError, VerificationError
from crypto.identity import Identity
from crypto.signing import Signer
from network.engine.chaincode_host import ChaincodeHost
from network.engine.errors import EndorseError, EvaluateError
from network.engine.proposal import (
    ENDORSER_TRANSACTION,
    Proposal,
    Transaction,
    create_proposal_response,
    create_transaction,
)
from network.engine.simulation_pool import SimulationPool, SimulationPoolError
from network.engine.statedb import StateDB, StateSnapshot
from network.engine.stub import SimulationResult
from network.fabric.errors import ConfigError, MSPError, PolicyNotSatisfiedError
from network.fabric.msp import ValidatedIdentity
from network.fabric.policy import Policy
from network.fabric.transactions import compute_tx_id
from network.fabric.validator import ChannelConfig

proposal_pb2: Any = _proposal_pb2
proposal_response_pb2: Any = _proposal_response_pb2

#: The channel policy a proposal's creator must satisfy (Fabric's ``peer/Propose`` ACL).
PROPOSE_ACL = "/Channel/Application/Writers"
#: The channel's default chaincode endorsement policy.
ENDORSEMENT_POLICY = "/Channel/Application/Endorsement"
#: Organisations tried right after the creator's own when choosing endorsers.
DEFAULT_PREFERRED_ORGS = ("Audit",)
#: Fabric's ``shim.ERRORTHRESHOLD``: responses at or above it are errors.
ERROR_THRESHOLD = 400

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class EndorsingPeer:
    """A peer that endorses: its organisation, serialized identity and signing function."""

    name: str
    org: str
    msp_id: str
    serialized: bytes
    signer: Signer = field(repr=False, compare=False)

    @classmethod
    def from_identity(cls, identity: Identity) -> EndorsingPeer:
        """The peer whose certificate and key ``identity`` holds."""
        return cls(
            identity.name, identity.org, identity.msp_id, identity.serialized(), identity.signer
        )


@dataclass(frozen=True)
class Endorsement:
    """An endorsed proposal: the simulation and every peer's signed ``ProposalResponse``."""

    proposal: Proposal
    result: SimulationResult
    responses: tuple[Any, ...]
    endorsers: tuple[str, ...]

    @property
    def tx_id(self) -> str:
        return self.proposal.tx_id

    @property
    def payload(self) -> bytes:
        """The chaincode's response payload (what ``submit`` returns to the client)."""
        return bytes(self.result.response.payload)

    def transaction(self) -> Transaction:
        """The unsigned transaction (``protoutil.CreateSignedTx`` before the creator signs)."""
        return create_transaction(self.proposal, self.responses)


def channel_endorsement_policy(channel: ChannelConfig) -> Policy:
    """The channel's ``/Channel/Application/Endorsement`` policy, every chaincode's default."""
    return channel.policies.get(ENDORSEMENT_POLICY)


class _Rejected(Exception):
    """A proposal check failed; mapped to the caller's phase error."""


class _SharedView:
    """A read snapshot shared by the simulations running at one height."""

    def __init__(self, snapshot: StateSnapshot) -> None:
        self.snapshot = snapshot
        self.users = 0
        self.retired = False

    def retire(self) -> None:
        """No new simulation will use this view; close it once the last one ends."""
        self.retired = True
        if self.users == 0:
            self.snapshot.close()


class Endorser:
    """The endorsing side of the embedded network (see the module docstring)."""

    def __init__(
        self,
        *,
        channel: ChannelConfig,
        store: StateDB,
        chaincodes: Mapping[str, ChaincodeHost],
        peers: Sequence[EndorsingPeer],
        clock: Clock,
        preferred_orgs: Sequence[str] = DEFAULT_PREFERRED_ORGS,
    ) -> None:
        self.channel = channel
        self.store = store
        self.chaincodes = dict(chaincodes)
        #: Worker processes simulating in place of this process (:meth:`use_simulation_pool`).
        self.simulations: SimulationPool | None = None
        self.peers = tuple(peers)
        self.clock = clock
        self.preferred_orgs = tuple(preferred_orgs)
        self.policy = channel_endorsement_policy(channel)
        self._acl = channel.policies.get(PROPOSE_ACL)
        self._peer_identities = {
            peer.msp_id: channel.msps.deserialize(peer.serialized) for peer in self.peers
        }
        self._selection: dict[str, tuple[EndorsingPeer, ...]] = {}
        self._acl_passed: set[bytes] = set()
        self._view: _SharedView | None = None

    # -- 1. checking the signed proposal ---------------------------------------------

    def _check(self, proposal: Proposal) -> ValidatedIdentity:
        if proposal.signature is None:
            raise _Rejected("proposal is not signed")
        try:
            header = proposal.channel_header
            nonce, creator = proposal.nonce, proposal.creator
            chaincode = proposal.chaincode_name
            extension = proposal_pb2.ChaincodeHeaderExtension.FromString(header.extension)
        except (AccessLedgerError, DecodeError) as exc:
            raise _Rejected(f"malformed proposal: {exc}") from exc
        if header.type != ENDORSER_TRANSACTION:
            raise _Rejected(f"header type {header.type} is not a chaincode call")
        if header.channel_id != self.channel.channel_id:
            raise _Rejected(f"channel {header.channel_id!r} not found")
        if not nonce or not creator:
            raise _Rejected("signature header lacks nonce or creator")
        if header.tx_id != compute_tx_id(nonce, creator) or header.tx_id != proposal.tx_id:
            raise _Rejected("tx_id is not SHA-256(nonce || creator)")
        try:
            identity = self.channel.msps.deserialize(creator, now=self.clock())
            identity.verify(proposal.proposal_bytes, proposal.signature)
        except MSPError as exc:
            raise _Rejected(f"creator is not a valid member of the channel: {exc.message}") from exc
        except VerificationError as exc:
            raise _Rejected(f"proposal signature: {exc.message}") from exc
        if creator not in self._acl_passed:
            try:
                self._acl.evaluate_identities([identity])
            except PolicyNotSatisfiedError as exc:
                raise _Rejected(f"access denied by {PROPOSE_ACL}: {exc.message}") from exc
            # The channel config is fixed for the network's lifetime, so the
            # ACL's answer for a creator is too.
            self._acl_passed.add(creator)
        if chaincode not in self.chaincodes or extension.chaincode_id.name != chaincode:
            raise _Rejected(f"chaincode {chaincode!r} is not installed on channel")
        return identity

    def check_proposal(self, proposal: Proposal) -> ValidatedIdentity:
        """Run the endorser's checks; return the creator or raise :class:`EndorseError`."""
        try:
            identity = self._check(proposal)
        except _Rejected as exc:
            raise EndorseError(
                f"proposal {proposal.tx_id} rejected: {exc}", tx_id=proposal.tx_id
            ) from None
        view = self._acquire_view()
        try:
            duplicate = view.snapshot.tx_exists(proposal.tx_id)
        finally:
            self._release_view(view)
        if duplicate:
            raise EndorseError(
                f"duplicate transaction found [{proposal.tx_id}]", tx_id=proposal.tx_id
            )
        return identity

    # -- 2. simulation -----------------------------------------------------------------

    def _acquire_view(self) -> _SharedView:
        """The snapshot of the current committed height, counted as in use until released."""
        view = self._view
        if view is None or view.snapshot.height != self.store.height:
            if view is not None:
                view.retire()
            view = self._view = _SharedView(self.store.snapshot())
        view.users += 1
        return view

    @staticmethod
    def _release_view(view: _SharedView) -> None:
        view.users -= 1
        if view.retired and view.users == 0:
            view.snapshot.close()

    async def simulate(self, proposal: Proposal) -> SimulationResult:
        """Run the chaincode on a snapshot of committed state (no checks, nothing signed).

        Simulations share one read snapshot per committed height: each sees a
        consistent state, and a burst of proposals costs one SQLite read
        transaction per block rather than one per proposal.
        """
        pool = self.simulations
        if pool is not None and proposal.chaincode_name in pool:
            return await pool.execute(proposal)
        host = self.chaincodes[proposal.chaincode_name]
        view = self._acquire_view()
        try:
            return await host.execute(proposal, view.snapshot)
        finally:
            self._release_view(view)

    def use_simulation_pool(self, pool: SimulationPool) -> None:
        """Simulate in ``pool``'s worker processes from now on; :meth:`close` stops it."""
        if self.simulations is not None:
            raise ConfigError("this endorser already simulates in a pool")
        self.simulations = pool

    def close(self) -> None:
        """Release the read snapshot and stop any simulation pool (the store closes separately)."""
        if self._view is not None:
            self._view.retire()
            self._view = None
        if self.simulations is not None:
            self.simulations.close()
            self.simulations = None

    # -- 3. choosing endorsers -----------------------------------------------------------

    def _preference(self, creator_msp_id: str) -> list[EndorsingPeer]:
        def rank(peer: EndorsingPeer) -> int:
            if peer.msp_id == creator_msp_id:
                return 0
            if peer.org in self.preferred_orgs or peer.msp_id in self.preferred_orgs:
                return 1
            return 2

        return sorted(self.peers, key=rank)  # stable: topology order within a rank

    def select_peers(self, creator_msp_id: str) -> tuple[EndorsingPeer, ...]:
        """The smallest preferred set of peers whose endorsements satisfy the policy."""
        cached = self._selection.get(creator_msp_id)
        if cached is not None:
            return cached
        order = self._preference(creator_msp_id)
        for size in range(1, len(order) + 1):
            # combinations() keeps input order, so the most preferred sets come first.
            for chosen in itertools.combinations(order, size):
                if self.policy.is_satisfied_by([self._peer_identities[p.msp_id] for p in chosen]):
                    self._selection[creator_msp_id] = chosen
                    return chosen
        raise ConfigError("no set of the network's peers satisfies the endorsement policy")

    def peers_of(self, orgs: Sequence[str]) -> tuple[EndorsingPeer, ...]:
        """The peers of the named organisations (names or MSP IDs), in the order given."""
        chosen = []
        for org in orgs:
            peer = next((p for p in self.peers if org in (p.org, p.msp_id)), None)
            if peer is None:
                raise ConfigError(f"no peer of organisation {org!r} in this network")
            chosen.append(peer)
        return tuple(chosen)

    # -- the whole step --------------------------------------------------------------------

    async def endorse(
        self, proposal: Proposal, *, endorsing_orgs: Sequence[str] | None = None
    ) -> Endorsement:
        """Check, simulate and endorse ``proposal``; raise :class:`EndorseError` on any failure."""
        creator = self.check_proposal(proposal)
        try:
            peers = (
                self.peers_of(endorsing_orgs)
                if endorsing_orgs
                else self.select_peers(creator.msp_id)
            )
        except ConfigError as exc:
            raise EndorseError(exc.message, tx_id=proposal.tx_id) from exc
        try:
            result = await self.simulate(proposal)
        except SimulationPoolError as exc:
            raise EndorseError(exc.message, tx_id=proposal.tx_id) from exc
        status = int(result.response.status)
        if status >= ERROR_THRESHOLD:
            raise EndorseError(
                f"chaincode response {status}, {result.response.message}",
                tx_id=proposal.tx_id,
                status=status,
            )
        return Endorsement(
            proposal=proposal,
            result=result,
            responses=self._sign(proposal, result, peers),
            endorsers=tuple(p.name for p in peers),
        )

    def _sign(
        self, proposal: Proposal, result: SimulationResult, peers: Sequence[EndorsingPeer]
    ) -> tuple[Any, ...]:
        host = self.chaincodes[proposal.chaincode_name]
        first = create_proposal_response(
            proposal,
            response=result.response,
            results=result.rwset_bytes,
            events=result.event_bytes,
            chaincode_name=host.name,
            chaincode_version=host.version,
            endorser=peers[0].serialized,
            signer=peers[0].signer,
        )
        responses = [first]
        payload = bytes(first.payload)
        for peer in peers[1:]:
            # The same payload, signed by the next peer (ESCC: payload || endorser).
            response = proposal_response_pb2.ProposalResponse()
            response.CopyFrom(first)
            response.endorsement.endorser = peer.serialized
            response.endorsement.signature = peer.signer(payload + peer.serialized)
            responses.append(response)
        return tuple(responses)

    async def evaluate(self, proposal: Proposal) -> bytes:
        """Run a query: the same checks and simulation, no endorsement, no transaction."""
        try:
            self._check(proposal)
        except _Rejected as exc:
            raise EvaluateError(
                f"proposal {proposal.tx_id} rejected: {exc}", tx_id=proposal.tx_id
            ) from None
        try:
            result = await self.simulate(proposal)
        except SimulationPoolError as exc:
            raise EvaluateError(exc.message, tx_id=proposal.tx_id) from exc
        status = int(result.response.status)
        if status >= ERROR_THRESHOLD:
            raise EvaluateError(
                f"chaincode response {status}, {result.response.message}",
                tx_id=proposal.tx_id,
                status=status,
            )
        return bytes(result.response.payload)
