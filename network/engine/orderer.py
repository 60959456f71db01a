"""Ordering: accept endorsed transactions, cut them into signed blocks.

The embedded orderer does what a single Fabric ordering node does for an
application channel:

* **Broadcast checks** (Fabric's standard channel message processor): the
  envelope is not empty and not larger than ``AbsoluteMaxBytes``; it decodes;
  it is an ``ENDORSER_TRANSACTION`` for this channel; its creator is a
  channel member whose certificate is valid now and whose signature
  satisfies ``/Channel/Writers`` (the ``SigFilter``). An envelope failing
  these never reaches a block; the caller gets a
  :class:`~network.engine.errors.SubmitError`.
* **Config updates** (``ProcessConfigUpdateMsg``): a ``CONFIG_UPDATE``
  envelope passes the same checks, then
  :func:`~network.fabric.configtx.apply_update` against the orderer's current
  config (read set, versions, every ``mod_policy``); the result goes into a
  ``CONFIG`` envelope (``ConfigEnvelope{config, last_update}``) signed by the
  orderer (:meth:`Orderer.check_config_update`). :meth:`Orderer.order_config`
  then cuts the pending batch and puts the config transaction alone in the
  next block, whose ``LAST_CONFIG`` points at itself, and from then on
  checks broadcasts and cuts batches by the new config. A refused update is
  a :class:`~network.engine.errors.ConfigUpdateRefusedError` and orders
  nothing.
* **Block cutting** (Fabric's ``blockcutter``): a batch is cut when it holds
  ``MaxMessageCount`` envelopes, when adding an envelope would take it past
  ``PreferredMaxBytes`` (an envelope larger than that travels alone), or when
  ``BatchTimeout`` has passed since the batch's first envelope arrived. The
  settings come from the channel config block, not from ``network.yaml``
  directly, so a ledger keeps the batch rules it was created with.
* **Block signing** (Fabric 2.x ``BlockWriter``): each block gets the next
  number, the previous block's header hash, its data hash, the orderer's
  signature in the SIGNATURES slot over ``OrdererBlockMetadata ||
  SignatureHeader || header`` and the last config index.

There is no separate orderer ledger: a cut block goes straight to the
committer, and the single SQLite store is the only copy. A block that was cut
but not yet committed when the process dies is simply lost; none of its
transactions had been reported committed, and their clients see a commit
status error instead.

All methods run on the event loop thread; the batch timer is a loop timer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.common import configtx_pb2 as _configtx_pb2
from google.protobuf.message import DecodeError

from crypto.errors import VerificationError
from crypto.signing import Signer
from network.engine.committer import CachingMSPRegistry, channel_config_from
from network.engine.errors import ConfigUpdateRefusedError, NetworkClosedError, SubmitError
from network.fabric.blocks import NONCE_SIZE, block_header_hash, new_block, sign_block
from network.fabric.configblock import batch_settings_from_config
from network.fabric.configtx import ConfigUpdateError, apply_update, config_update_from_envelope
from network.fabric.errors import ConfigError, MSPError, PolicyNotSatisfiedError
from network.fabric.transactions import (
    CONFIG,
    CONFIG_UPDATE,
    ENDORSER_TRANSACTION,
    SignedData,
    compute_tx_id,
)
from network.fabric.validator import ChannelConfig
from network.topology import BatchSettings

common_pb2: Any = _common_pb2
configtx_pb2: Any = _configtx_pb2

#: The channel policy an envelope's signature must satisfy (Fabric's SigFilter).
WRITERS_POLICY = "/Channel/Writers"
#: Policies the engine cannot run without; a config update removing one is refused.
REQUIRED_POLICIES = (
    WRITERS_POLICY,
    "/Channel/Application/Writers",
    "/Channel/Application/Endorsement",
    "/Channel/Orderer/BlockValidation",
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the next block goes: its number, the previous header hash, the last config."""

    next_number: int
    previous_hash: bytes
    last_config: int


@dataclass(frozen=True, slots=True)
class ConfigTransaction:
    """An accepted config update: the orderer-signed CONFIG envelope and the config it makes."""

    update_tx_id: str
    tx_id: str
    envelope: bytes
    channel: ChannelConfig
    batch: BatchSettings

    @property
    def sequence(self) -> int:
        return self.channel.sequence


class Orderer:
    """Cuts broadcast envelopes into signed blocks and hands each to ``deliver``."""

    def __init__(
        self,
        *,
        channel: ChannelConfig,
        batch: BatchSettings,
        creator: bytes,
        signer: Signer,
        head: ChainHead,
        deliver: Callable[[Any], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.channel = channel
        self.batch = batch
        self._creator = creator
        self._signer = signer
        self._head = head
        self._deliver = deliver
        self._clock = clock
        self._writers = channel.policies.get(WRITERS_POLICY)
        self._writers_passed: set[bytes] = set()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def head(self) -> ChainHead:
        """The number and previous hash the next block will carry."""
        return self._head

    @property
    def pending(self) -> int:
        """Envelopes waiting for the current batch to be cut."""
        return len(self._pending)

    # -- broadcast ---------------------------------------------------------------------

    def _decode(self, envelope: bytes) -> tuple[Any, Any, Any]:
        """Size and decoding checks; the envelope, its channel header and signature header."""
        if not envelope:
            raise _Refused("envelope is empty")
        if len(envelope) > self.batch.absolute_max_bytes:
            raise _Refused(
                f"envelope is {len(envelope)} bytes, more than the channel's "
                f"AbsoluteMaxBytes {self.batch.absolute_max_bytes}"
            )
        try:
            env = common_pb2.Envelope.FromString(envelope)
            payload = common_pb2.Payload.FromString(env.payload)
            header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            signature_header = common_pb2.SignatureHeader.FromString(
                payload.header.signature_header
            )
        except DecodeError as exc:
            raise _Refused(f"envelope does not decode: {exc}") from exc
        return env, header, signature_header

    def check(self, envelope: bytes) -> str:
        """Apply the broadcast checks to ``envelope``; return its tx id or raise SubmitError."""
        tx_id = ""
        try:
            env, header, signature_header = self._decode(envelope)
            tx_id = str(header.tx_id)
            if header.channel_id != self.channel.channel_id:
                raise _Refused(f"channel {header.channel_id!r} not found")
            if header.type != ENDORSER_TRANSACTION:
                raise _Refused(
                    f"header type {header.type} is not accepted: broadcast orders endorser "
                    "transactions; config updates go through update_config"
                )
            self._check_signature(
                SignedData(bytes(signature_header.creator), bytes(env.payload), env.signature)
            )
        except _Refused as exc:
            raise SubmitError(f"orderer refused transaction: {exc}", tx_id=tx_id) from None
        return tx_id

    def _check_signature(self, signed: SignedData, *, remember: bool = True) -> None:
        try:
            msps = self.channel.msps
            now = self._clock()
            # Remembered for the committer, which must check the same signature again.
            identity = (
                msps.remember(signed, now=now)
                if remember and isinstance(msps, CachingMSPRegistry)
                else msps.verify(signed, now=now)
            )
            if signed.identity not in self._writers_passed:
                self._writers.evaluate_identities([identity])
                # Until the next config update, the policy's answer for an identity is fixed.
                self._writers_passed.add(signed.identity)
        except MSPError as exc:
            raise _Refused(f"creator is not a valid member of the channel: {exc.message}") from exc
        except VerificationError as exc:
            raise _Refused(f"envelope signature: {exc.message}") from exc
        except PolicyNotSatisfiedError as exc:
            raise _Refused(f"{WRITERS_POLICY}: {exc.message}") from exc

    # -- config updates ----------------------------------------------------------------

    def check_config_update(self, envelope: bytes) -> ConfigTransaction:
        """Validate a ``CONFIG_UPDATE`` envelope; build the CONFIG transaction it becomes.

        Nothing is ordered yet (see :meth:`order_config`). Raises
        :class:`ConfigUpdateRefusedError` carrying the update's tx id and the
        reason's stable code.
        """
        tx_id = ""
        try:
            env, header, signature_header = self._decode(envelope)
            tx_id = str(header.tx_id)
            if header.channel_id != self.channel.channel_id:
                raise _Refused(f"channel {header.channel_id!r} not found")
            if header.type != CONFIG_UPDATE:
                raise _Refused(f"header type {header.type} is not CONFIG_UPDATE")
            self._check_signature(
                SignedData(bytes(signature_header.creator), bytes(env.payload), env.signature),
                remember=False,
            )
            # Whole seconds, as Fabric stamps a config envelope; the validator checks at it too.
            now = self._clock().astimezone(UTC).replace(microsecond=0)
            config = apply_update(self.channel, config_update_from_envelope(env), now=now)
            batch = batch_settings_from_config(config)
            channel = channel_config_from(self.channel.channel_id, config)
            missing = [p for p in REQUIRED_POLICIES if p not in channel.policies.policies]
            if missing:
                raise ConfigError(f"the updated config has no {', '.join(missing)} policy")
        except _Refused as exc:
            raise ConfigUpdateRefusedError(
                f"orderer refused config update: {exc}", tx_id=tx_id
            ) from None
        except (ConfigUpdateError, ConfigError) as exc:
            code = exc.code if isinstance(exc, ConfigUpdateError) else ConfigUpdateError.code
            raise ConfigUpdateRefusedError(
                f"orderer refused config update: {exc.message}", tx_id=tx_id, code=code
            ) from None
        config_tx_id, config_envelope = self._config_envelope(config, env, now)
        return ConfigTransaction(tx_id, config_tx_id, config_envelope, channel, batch)

    def _config_envelope(self, config: Any, last_update: Any, now: datetime) -> tuple[str, bytes]:
        """The orderer-signed CONFIG envelope (``protoutil.CreateSignedEnvelope``)."""
        nonce = os.urandom(NONCE_SIZE)
        tx_id = compute_tx_id(nonce, self._creator)
        channel_header = common_pb2.ChannelHeader(
            type=CONFIG, channel_id=self.channel.channel_id, tx_id=tx_id
        )
        channel_header.timestamp.seconds = int(now.timestamp())
        payload = common_pb2.Payload(
            header=common_pb2.Header(
                channel_header=channel_header.SerializeToString(),
                signature_header=common_pb2.SignatureHeader(
                    creator=self._creator, nonce=nonce
                ).SerializeToString(),
            ),
            data=configtx_pb2.ConfigEnvelope(
                config=config, last_update=last_update
            ).SerializeToString(),
        ).SerializeToString()
        envelope = common_pb2.Envelope(payload=payload, signature=self._signer(payload))
        data: bytes = envelope.SerializeToString()
        return tx_id, data

    def order_config(self, config_tx: ConfigTransaction) -> Any:
        """Cut the pending batch, then order ``config_tx`` alone in a block; adopt its config.

        The block's ``LAST_CONFIG`` is its own number, as is every later
        block's until the next config update. Returns the block.
        """
        if self._closed:
            raise NetworkClosedError("the orderer is closed")
        if config_tx.sequence != self.channel.sequence + 1:
            raise ConfigUpdateRefusedError(
                f"config sequence {config_tx.sequence} does not follow the orderer's "
                f"{self.channel.sequence}",
                tx_id=config_tx.update_tx_id,
                code="config_update_stale",
            )
        self.cut()
        head = self._head
        block = new_block(head.next_number, head.previous_hash, [config_tx.envelope])
        sign_block(block, signer=self._signer, creator=self._creator, last_config=head.next_number)
        self._head = ChainHead(
            head.next_number + 1, block_header_hash(block.header), head.next_number
        )
        self.adopt(config_tx.channel, config_tx.batch)
        self._deliver(block)
        return block

    def adopt(self, channel: ChannelConfig, batch: BatchSettings) -> None:
        """Check broadcasts and cut batches by ``channel`` from now on."""
        self.channel = channel
        self.batch = batch
        self._writers = channel.policies.get(WRITERS_POLICY)
        self._writers_passed = set()

    def broadcast(self, envelope: bytes) -> str:
        """Check ``envelope`` and add it to the current batch; return its tx id.

        Returns once the envelope is accepted for ordering (as Fabric's
        Broadcast does), not when it is committed.
        """
        if self._closed:
            raise NetworkClosedError("the orderer is closed")
        tx_id = self.check(envelope)
        self.order(envelope)
        return tx_id

    # -- block cutting -----------------------------------------------------------------

    def order(self, envelope: bytes) -> None:
        """Add an already checked envelope, cutting blocks as the batch settings say."""
        size = len(envelope)
        if size > self.batch.preferred_max_bytes:
            # Fabric: an oversized message is cut into a batch of its own.
            self.cut()
            self._pending.append(envelope)
            self.cut()
            return
        if self._pending_bytes + size > self.batch.preferred_max_bytes:
            self.cut()
        self._pending.append(envelope)
        self._pending_bytes += size
        if len(self._pending) >= self.batch.max_message_count:
            self.cut()
        elif len(self._pending) == 1:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.batch.batch_timeout_ms / 1000, self._timeout)

    def _timeout(self) -> None:
        self._timer = None
        self.cut()

    def cut(self) -> Any | None:
        """Cut the pending envelopes into a signed block and deliver it; return the block."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return None
        envelopes, self._pending, self._pending_bytes = self._pending, [], 0
        head = self._head
        block = new_block(head.next_number, head.previous_hash, envelopes)
        sign_block(block, signer=self._signer, creator=self._creator, last_config=head.last_config)
        self._head = ChainHead(
            head.next_number + 1, block_header_hash(block.header), head.last_config
        )
        self._deliver(block)
        return block

    def close(self) -> None:
        """Cut whatever is pending and accept nothing more."""
        if not self._closed:
            self.cut()
            self._closed = True


class _Refused(Exception):
    """A broadcast check failed."""
