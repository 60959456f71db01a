"""The embedded network: one process running Fabric's execute-order-validate flow on SQLite.

:class:`EmbeddedNetwork` wires the pieces together for the home's channel:

* the **store** (:mod:`.statedb`), one SQLite file ``HOME/ledger/<channel>.sqlite``
  (:mod:`.ledgerfile`) whose hash chain is verified on every open;
* the **channel configuration**, read from the last config block; on first
  open the genesis block is built from the home's ``network.yaml`` and MSP
  folders (:func:`network.fabric.configblock.genesis_block_for_home`) and
  committed as block 0 (:mod:`.opening`);
* one **endorsing peer per organisation**, signing with that organisation's
  peer identity (:mod:`.endorser`);
* the **orderer**, signing blocks with the orderer identity and cutting
  them by the config block's batch settings (:mod:`.orderer`);
* the **committer**, validating and committing each block on a dedicated
  worker thread (:mod:`.committer`, :mod:`.commitloop`).

The channel configuration changes only through :meth:`update_config` (a
signed ``CONFIG_UPDATE``, validated as Fabric's orderer and peers do; see
:mod:`.reconfig`); afterwards MSPs, policies, batch settings and endorsing
peers follow the new config and :meth:`add_config_listener` callbacks run.

Clients use :class:`~network.engine.gateway.Gateway` (``network.gateway(identity)``)
or the :meth:`submit`/:meth:`evaluate` shortcuts. Readers use
:meth:`get_block`, :meth:`blocks` (:mod:`.blockfeed`), :meth:`chaincode_events`
(:mod:`.streams`) and :meth:`export`.

The network is bound to the asyncio event loop that first uses it (the
orderer's batch timer and the commit loop live there). Close it with
``await network.aclose()`` (or ``async with``): pending envelopes are cut into
a last block and every ordered block is committed before the store closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from crypto.consortium import Consortium
from crypto.errors import AccessLedgerError
from crypto.identity import Identity
from network.engine.blockfeed import BlockFeed
from network.engine.chaincode_host import ChaincodeHost
from network.engine.commitloop import CommitLoop
from network.engine.committer import (
    CommittedBlock,
    Committer,
    CommitWaiters,
    chaincode_policies,
)
from network.engine.committer import TxStatus as TxStatus  # re-exported for clients
from network.engine.endorser import (
    DEFAULT_PREFERRED_ORGS,
    Endorsement,
    Endorser,
    channel_endorsement_policy,
)
from network.engine.errors import (
    CommitStatusError,
    ConfigUpdateRefusedError,
    EndorseError,
    EvaluateError,
    NetworkClosedError,
    SubmitError,
)
from network.engine.ledgerfile import LEDGER_DIR as LEDGER_DIR
from network.engine.ledgerfile import export_ledger as export_ledger
from network.engine.ledgerfile import ledger_path as ledger_path
from network.engine.ledgerfile import open_ledger as open_ledger
from network.engine.ledgerfile import require_block as _require
from network.engine.opening import open_home_ledger
from network.engine.orderer import ChainHead, Orderer
from network.engine.proposal import Proposal
from network.engine.reconfig import ConfigCommit as ConfigCommit
from network.engine.reconfig import ConfigFollower, ConfigListener, endorsing_peers
from network.engine.statedb import StateDB
from network.engine.streams import ChaincodeEventInfo as ChaincodeEventInfo
from network.engine.streams import chaincode_events_in
from network.engine.streams import wait_status as wait_status
from network.engine.writerlock import WriterLock
from network.fabric.blocks import last_config_index, parse_block
from network.fabric.configblock import batch_settings_from_config
from network.fabric.policy import EndorsementPolicies
from network.fabric.validator import ChannelConfig
from network.topology import Topology

if TYPE_CHECKING:
    from network.engine.gateway import Gateway, SubmitResult

#: How long a commit status waits by default (fabric-gateway's default is one minute).
DEFAULT_COMMIT_TIMEOUT = 60.0

T = TypeVar("T")
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class EmbeddedNetwork:
    """A whole Fabric-style network for one channel, in this process (see module docstring)."""

    def __init__(
        self,
        *,
        home: Path,
        topology: Topology,
        consortium: Consortium,
        store: StateDB,
        channel: ChannelConfig,
        chaincodes: Mapping[str, ChaincodeHost],
        clock: Clock,
        preferred_orgs: Sequence[str],
    ) -> None:
        self.home = home
        self.topology = topology
        self.consortium = consortium
        self.store = store
        self.channel = channel
        self.clock = clock
        self.chaincodes = dict(chaincodes)
        self.batch = batch_settings_from_config(channel.config)
        self.endorser = Endorser(
            channel=channel,
            store=store,
            chaincodes=self.chaincodes,
            peers=endorsing_peers(topology, consortium, channel),
            clock=clock,
            preferred_orgs=preferred_orgs,
        )
        self.committer = Committer(
            store=store,
            channel=channel,
            policies=self._endorsement_policies(channel),
            policies_for=self._endorsement_policies,
        )
        self._commits = CommitLoop(
            self.committer.commit, on_committed=self._on_committed, on_failure=self._fail
        )
        orderer_identity = consortium.identity(topology.orderer.identity)
        tip = parse_block(self._block_bytes(store.height - 1))
        self.orderer = Orderer(
            channel=channel,
            batch=self.batch,
            creator=orderer_identity.serialized(),
            signer=orderer_identity.signer,
            head=ChainHead(store.height, store.tip_hash, last_config_index(tip)),
            deliver=self._commits.deliver,
            clock=clock,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters = CommitWaiters()
        self._feed = BlockFeed(
            store,
            closed=lambda: self._closed,
            stopping=lambda: self._closing or self._failure is not None,
            bind=self._ensure_running,
        )
        self._failure: BaseException | None = None
        self._closing = False
        self._closed = False
        self._writer_lock: WriterLock | None = None
        self._config = ConfigFollower(self)

    def _endorsement_policies(self, channel: ChannelConfig) -> EndorsementPolicies:
        """Every installed chaincode is endorsed by the channel's default policy."""
        policy = channel_endorsement_policy(channel)
        return chaincode_policies(self.chaincodes.__contains__, policy)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        home: Path | str,
        *,
        chaincodes: Mapping[str, object],
        clock: Clock | None = None,
        preferred_orgs: Sequence[str] = DEFAULT_PREFERRED_ORGS,
        verify: Literal["full", "tail"] = "full",
    ) -> EmbeddedNetwork:
        """Open the network of ``home``, creating its ledger (genesis block) on first use.

        ``chaincodes`` maps each installed chaincode's name to a
        :class:`ChaincodeHost`, a chaincode or contract object, or a class or
        factory making one. The stored chain is verified (``verify``); a
        ledger altered on disk raises
        :class:`~network.engine.statedb.LedgerCorruptionError`.
        """
        home = Path(home)
        clock = clock or _utc_now
        opened = open_home_ledger(home, chaincodes=chaincodes, clock=clock, verify=verify)
        try:
            network = cls(
                home=home,
                topology=opened.topology,
                consortium=opened.consortium,
                store=opened.store,
                channel=opened.channel,
                chaincodes=opened.chaincodes,
                clock=clock,
                preferred_orgs=preferred_orgs,
            )
        except BaseException:
            opened.close()
            raise
        network._writer_lock = opened.writer_lock
        return network

    @property
    def channel_id(self) -> str:
        return self.channel.channel_id

    @property
    def running(self) -> bool:
        """Whether the network accepts work (not closing, closed or stopped by a failure)."""
        return not (self._closing or self._closed or self._failure is not None)

    @property
    def height(self) -> int:
        """Number of committed blocks."""
        return self.store.height

    @property
    def tip_hash(self) -> bytes:
        """Header hash of the last committed block."""
        return self.store.tip_hash

    def _block_bytes(self, number: int) -> bytes:
        return _require(self.store.get_block(number))

    # -- the running pipeline ------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._closing or self._closed:
            raise NetworkClosedError("the network is closed")
        if self._failure is not None:
            raise NetworkClosedError(f"the network stopped after a failure: {self._failure}")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._feed.start()
            self._commits.start(loop)
        elif self._loop is not loop:
            raise AccessLedgerError(
                "the network is bound to another event loop", code="network_wrong_loop"
            )

    async def run_in_committer(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the committer's worker thread (e.g. to profile it)."""
        return await self._commits.run_in_worker(function)

    def _on_committed(self, committed: CommittedBlock) -> None:
        if committed.channel is not None:
            self._config.adopt(committed.channel)
        self._waiters.resolve(committed)
        self._feed.wake()

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self.orderer.close()
        self._waiters.fail(f"the network stopped after a failure: {exc}")
        self._feed.wake()

    # -- server-side operations (what a gateway calls) ----------------------------------------

    async def endorse(
        self, proposal: Proposal, *, endorsing_orgs: Sequence[str] | None = None
    ) -> Endorsement:
        """Check, simulate and endorse a signed proposal; see :class:`Endorser`."""
        try:
            self._ensure_running()
        except NetworkClosedError as exc:
            raise EndorseError(exc.message, tx_id=proposal.tx_id) from exc
        return await self.endorser.endorse(proposal, endorsing_orgs=endorsing_orgs)

    async def evaluate_proposal(self, proposal: Proposal) -> bytes:
        """Run a signed query proposal; return the chaincode's response payload."""
        try:
            self._ensure_running()
        except NetworkClosedError as exc:
            raise EvaluateError(exc.message, tx_id=proposal.tx_id) from exc
        return await self.endorser.evaluate(proposal)

    def transaction_status(self, tx_id: str) -> TxStatus | None:
        """The committed status of ``tx_id`` from the tx index, or ``None`` if not committed.

        Read from a snapshot, so the event loop never waits for a block commit.
        """
        with self.store.snapshot() as view:
            location = view.get_transaction(tx_id)
        if location is None:
            return None
        return TxStatus(tx_id, location.validation_code, location.block_num)

    def commit_waiter(self, tx_id: str, *, check_ledger: bool = True) -> asyncio.Future[TxStatus]:
        """A future resolved with ``tx_id``'s status once a block holding it is committed.

        With ``check_ledger`` a transaction already on the ledger resolves at
        once with its first committed occurrence, as Fabric's commit status
        does. A submitter registers *before* broadcasting and without
        ``check_ledger``: the future then reports the block its own envelope
        landed in, so a re-submitted transaction comes back DUPLICATE_TXID.
        """
        self._ensure_running()
        assert self._loop is not None
        future: asyncio.Future[TxStatus] = self._loop.create_future()
        status = self.transaction_status(tx_id) if check_ledger else None
        if status is not None:
            future.set_result(status)
        else:
            self._waiters.add(tx_id, future)
        return future

    def forget_waiter(self, tx_id: str, future: asyncio.Future[TxStatus]) -> None:
        """Drop a waiter that will not be awaited (its broadcast failed, it timed out)."""
        self._waiters.discard(tx_id, future)

    async def broadcast(self, envelope: bytes) -> str:
        """Hand a signed transaction envelope to the orderer; return its tx id.

        Raises :class:`SubmitError` if the orderer refuses it.
        """
        try:
            self._ensure_running()
        except NetworkClosedError as exc:
            raise SubmitError(exc.message, tx_id="") from exc
        return self.orderer.broadcast(envelope)

    async def update_config(
        self, envelope: bytes, *, timeout: float | None = DEFAULT_COMMIT_TIMEOUT
    ) -> ConfigCommit:
        """Order a signed ``CONFIG_UPDATE`` envelope; return once its config block is committed.

        Raises :class:`ConfigUpdateRefusedError` (with the update's tx id and
        a stable code) if the orderer refuses it; nothing is written then.
        See :mod:`.reconfig`.
        """
        try:
            self._ensure_running()
        except NetworkClosedError as exc:
            raise ConfigUpdateRefusedError(exc.message, tx_id="", code=exc.code) from exc
        return await self._config.update(envelope, timeout)

    def add_config_listener(self, listener: ConfigListener) -> None:
        """Call ``listener(channel)`` on the event loop after each committed config update."""
        self._config.add_listener(listener)

    async def commit_status(
        self, tx_id: str, *, timeout: float | None = DEFAULT_COMMIT_TIMEOUT
    ) -> TxStatus:
        """Wait for ``tx_id`` to be committed; raise :class:`CommitStatusError` on timeout."""
        try:
            waiter = self.commit_waiter(tx_id)
        except NetworkClosedError as exc:
            raise CommitStatusError(exc.message, tx_id=tx_id) from exc
        return await wait_status(self, tx_id, waiter, timeout)

    # -- client shortcuts -----------------------------------------------------------------

    def gateway(self, identity: Identity) -> Gateway:
        """A fabric-gateway style client acting as ``identity`` (which must hold its key)."""
        from network.engine.gateway import Gateway

        return Gateway.for_identity(self, identity)

    async def submit(
        self,
        identity: Identity,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
        endorsing_orgs: Sequence[str] | None = None,
    ) -> SubmitResult:
        """Submit as ``identity`` and wait for the commit; see :meth:`Gateway.submit`."""
        return await self.gateway(identity).submit(
            chaincode, function, args, transient=transient, endorsing_orgs=endorsing_orgs
        )

    async def evaluate(
        self,
        identity: Identity,
        chaincode: str,
        function: str,
        args: Sequence[str | bytes] = (),
        *,
        transient: Mapping[str, bytes] | None = None,
    ) -> bytes:
        """Run a query as ``identity``; see :meth:`Gateway.evaluate`."""
        return await self.gateway(identity).evaluate(chaincode, function, args, transient=transient)

    # -- reading the ledger -----------------------------------------------------------------

    def get_block(self, number: int) -> Any:
        """The committed ``common.Block`` number ``number`` (with its TRANSACTIONS_FILTER)."""
        data = self.store.get_block(number)
        if data is None:
            raise AccessLedgerError(
                f"block {number} does not exist (height {self.height})", code="block_not_found"
            )
        return parse_block(data)

    def blocks(self, from_height: int = 0) -> AsyncIterator[Any]:
        """Yield committed blocks from ``from_height`` on: stored ones, then each new one.

        Ends when the network closes (see :mod:`.blockfeed`).
        """
        return self._feed.follow(from_height)

    async def chaincode_events(
        self, from_height: int = 0, chaincode: str | None = None
    ) -> AsyncIterator[ChaincodeEventInfo]:
        """Yield events of valid transactions from ``from_height`` on, of one chaincode or all."""
        async for info in chaincode_events_in(self.blocks(from_height), chaincode):
            yield info

    def export(self, path: Path | str) -> int:
        """Write every committed block to ``path`` as length-delimited ``common.Block`` messages.

        The framing is Fabric's (varint length, block bytes), the same as the
        fixture ``ledger.bin``. Returns the number of blocks written.
        """
        return export_ledger(self.store, Path(path))

    # -- closing --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cut pending envelopes, commit every ordered block, then close the store."""
        if self._closed or self._closing:
            return
        self._closing = True
        if self._commits.started:
            if self._failure is None:
                self.orderer.close()
            await self._commits.drain()
        self._waiters.fail("the network closed before the transaction committed")
        self._closed = True
        self._feed.wake()
        self._commits.shutdown()
        self.endorser.close()
        self.store.close()
        self._release_writer_lock()

    def _release_writer_lock(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    def close(self) -> None:
        """Close a network that never ran on an event loop (e.g. after export)."""
        if self._commits.started and not self._closed:
            raise AccessLedgerError(
                "the network is running; close it with `await network.aclose()`",
                code="network_running",
            )
        self._closed = True
        self._commits.shutdown()
        self.endorser.close()
        self.store.close()
        self._release_writer_lock()

    async def __aenter__(self) -> EmbeddedNetwork:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
