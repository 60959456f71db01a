"""Ordering: accept endorsed transactions, cut them into signed blocks.

The embedded orderer does what a single Fabric ordering node does for an
application channel:

* **Broadcast checks** (Fabric's standard channel message processor): the
  envelope is not empty and not larger than ``AbsoluteMaxBytes``; it decodes;
  it is an ``ENDORSER_TRANSACTION`` for this channel (the embedded engine has
  no channel-config updates); its creator is a channel member whose
  certificate is valid now and whose signature satisfies ``/Channel/Writers``
  (the ``SigFilter``). An envelope failing these never reaches a block; the
  caller gets a :class:`~network.engine.errors.SubmitError`.
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from google.protobuf.message import DecodeError

from crypto.errors import VerificationError
from crypto.signing import Signer
from network.engine.committer import CachingMSPRegistry
from network.engine.errors import NetworkClosedError, SubmitError
from network.fabric.blocks import block_header_hash, new_block, sign_block
from network.fabric.errors import MSPError, PolicyNotSatisfiedError
from network.fabric.transactions import ENDORSER_TRANSACTION, SignedData
from network.fabric.validator import ChannelConfig
from network.topology import BatchSettings

common_pb2: Any = _common_pb2

#: The channel policy an envelope's signature must satisfy (Fabric's SigFilter).
WRITERS_POLICY = "/Channel/Writers"


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the next block goes: its number, the previous header hash, the last config."""

    next_number: int
    previous_hash: bytes
    last_config: int


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

    def check(self, envelope: bytes) -> str:
        """Apply the broadcast checks to ``envelope``; return its tx id or raise SubmitError."""
        tx_id = ""
        try:
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
            tx_id = str(header.tx_id)
            if header.channel_id != self.channel.channel_id:
                raise _Refused(f"channel {header.channel_id!r} not found")
            if header.type != ENDORSER_TRANSACTION:
                raise _Refused(
                    f"header type {header.type} is not accepted: the embedded orderer only "
                    "orders endorser transactions"
                )
            self._check_signature(
                SignedData(bytes(signature_header.creator), bytes(env.payload), env.signature)
            )
        except _Refused as exc:
            raise SubmitError(f"orderer refused transaction: {exc}", tx_id=tx_id) from None
        return tx_id

    def _check_signature(self, signed: SignedData) -> None:
        try:
            msps = self.channel.msps
            now = self._clock()
            # Remembered for the committer, which must check the same signature again.
            identity = (
                msps.remember(signed, now=now)
                if isinstance(msps, CachingMSPRegistry)
                else msps.verify(signed, now=now)
            )
            if signed.identity not in self._writers_passed:
                self._writers.evaluate_identities([identity])
                # Fixed channel config: the policy's answer for an identity is too.
                self._writers_passed.add(signed.identity)
        except MSPError as exc:
            raise _Refused(f"creator is not a valid member of the channel: {exc.message}") from exc
        except VerificationError as exc:
            raise _Refused(f"envelope signature: {exc.message}") from exc
        except PolicyNotSatisfiedError as exc:
            raise _Refused(f"{WRITERS_POLICY}: {exc.message}") from exc

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
