"""Channel config updates in the running embedded network: ordering them, then following them.

An operator changes the channel (onboards a department, revokes a
certificate) by sending a signed ``CONFIG_UPDATE`` envelope
(:mod:`network.fabric.configtx` builds one) to
:meth:`EmbeddedNetwork.update_config <network.engine.network.EmbeddedNetwork.update_config>`:

1. the orderer checks it against the config it orders by -- broadcast
   checks, then Fabric's ``ProposeConfigUpdate`` -- and refuses it with a
   :class:`~network.engine.errors.ConfigUpdateRefusedError` (nothing is
   ordered) or wraps the new config in an orderer-signed ``CONFIG``
   transaction;
2. the orderer cuts any pending batch, puts the config transaction alone in
   the next block and orders every later envelope under the new config;
3. the committer validates the block -- the config must be exactly what the
   update makes of the config before it -- commits it, and validates later
   blocks under the new config;
4. on the event loop, :class:`ConfigFollower` makes the rest of the network
   follow: ``network.channel``, the batch settings, a new endorser whose
   peers are those of the channel's organisations that have a peer identity
   in the home (the home is re-read, so a department onboarded since the
   network opened gets its endorsing peer), and then every config listener.

Updates are processed one at a time; the caller gets a :class:`ConfigCommit`
once the config block is durably committed. After a restart the network
opens with the last config block's configuration (``LAST_CONFIG``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crypto.consortium import Consortium
from crypto.errors import AccessLedgerError
from network.engine.endorser import Endorser, EndorsingPeer
from network.engine.errors import CommitError
from network.engine.streams import wait_status
from network.fabric.configblock import batch_settings_from_config
from network.fabric.validator import ChannelConfig
from network.topology import Topology

if TYPE_CHECKING:
    from network.engine.network import EmbeddedNetwork

logger = logging.getLogger("accessledger.network")

#: Called on the event loop with the new configuration after each config block commits.
ConfigListener = Callable[[ChannelConfig], None]


@dataclass(frozen=True)
class ConfigCommit:
    """A committed config update: the CONFIG transaction's id, its block and the new sequence."""

    tx_id: str
    block_number: int
    sequence: int


def endorsing_peers(
    topology: Topology, consortium: Consortium, channel: ChannelConfig
) -> list[EndorsingPeer]:
    """One endorsing peer per channel organisation whose peer identity and key are in the home.

    An organisation of ``network.yaml`` that is not (or no longer) in the
    channel config gets no peer, nor does one whose peer certificate the
    channel's MSP refuses (e.g. revoked); an organisation of the channel
    whose peer runs elsewhere simply has none here.
    """
    peers = []
    for org in topology.organizations:
        if not org.peers or channel.policies.application_org(org.msp_id) is None:
            continue
        name = org.peers[0].identity
        try:
            identity = consortium.identity(name)
            channel.msps.deserialize(identity.serialized())
            peers.append(EndorsingPeer.from_identity(identity))
        except AccessLedgerError as exc:
            logger.warning("peer %s of %s does not endorse: %s", name, org.msp_id, exc)
    return peers


class ConfigFollower:
    """Orders config updates for one network and makes the network follow committed ones."""

    def __init__(self, network: EmbeddedNetwork) -> None:
        self._network = network
        self._listeners: list[ConfigListener] = []
        self._lock = asyncio.Lock()

    def add_listener(self, listener: ConfigListener) -> None:
        """Call ``listener(channel)`` on the event loop after each config commit."""
        self._listeners.append(listener)

    async def update(self, envelope: bytes, timeout: float | None) -> ConfigCommit:
        """Order a ``CONFIG_UPDATE`` envelope and wait for its config block to commit.

        Raises :class:`ConfigUpdateRefusedError` if the orderer refuses it,
        :class:`CommitStatusError` on timeout or close, and
        :class:`CommitError` if the committer invalidated the block (which
        would mean orderer and committer disagree: the network then stops).
        """
        network = self._network
        async with self._lock:  # one update at a time: each is checked against the last
            config_tx = network.orderer.check_config_update(envelope)
            waiter = network.commit_waiter(config_tx.tx_id, check_ledger=False)
            try:
                block = network.orderer.order_config(config_tx)
            except AccessLedgerError:
                network.forget_waiter(config_tx.tx_id, waiter)
                raise
            # The block is only queued: the committer cannot reach it before we yield.
            network.committer.prepare_config(int(block.header.number), config_tx.channel)
            status = await wait_status(network, config_tx.tx_id, waiter, timeout)
        if not status.valid:
            error = CommitError(
                tx_id=status.tx_id,
                validation_code=status.validation_code,
                block_number=status.block_number,
            )
            logger.error("the committer invalidated an ordered config update: %s", error)
            network._fail(error)  # the orderer already orders by a config no peer accepted
            raise error
        return ConfigCommit(status.tx_id, status.block_number, config_tx.sequence)

    def adopt(self, channel: ChannelConfig) -> None:
        """Make the network follow a committed config (on the event loop), then tell listeners.

        If the network cannot follow (the orderer refuses such configs, so
        this is a bug), it stops rather than run half reconfigured.
        """
        try:
            self._follow(channel)
        except Exception as exc:
            logger.error("cannot follow config sequence %s; the network stops", channel.sequence)
            self._network._fail(exc)
            return
        for listener in list(self._listeners):
            try:
                listener(channel)
            except Exception:
                logger.exception("a config listener failed")

    def _follow(self, channel: ChannelConfig) -> None:
        network = self._network
        batch = batch_settings_from_config(channel.config)
        network.channel = channel
        network.batch = batch
        if network.orderer.channel.sequence < channel.sequence:
            network.orderer.adopt(channel, batch)
        try:
            topology = Topology.load(network.home / "network.yaml")
            consortium = Consortium.load(network.home)
        except AccessLedgerError as exc:
            logger.warning("cannot re-read the home after a config update: %s", exc)
            topology, consortium = network.topology, network.consortium
        network.topology, network.consortium = topology, consortium
        previous = network.endorser
        network.endorser = Endorser(
            channel=channel,
            store=network.store,
            chaincodes=network.chaincodes,
            peers=endorsing_peers(topology, consortium, channel),
            clock=network.clock,
            preferred_orgs=previous.preferred_orgs,
        )
        previous.close()  # its read view closes once running simulations finish
