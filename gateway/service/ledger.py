"""The gateway's view of the ledger: endorse, order and commit, queries, committed reads.

:class:`LedgerClient` wraps the embedded network for the rest of the
gateway and is the boundary where engine errors become HTTP problems:

* :meth:`endorse` -- a caller-signed proposal; a chaincode refusal keeps the
  contract's own code and status (``[code] text`` messages,
  :func:`chaincode.parse_error_message`), with the transaction id;
* :meth:`commit` -- a caller-signed transaction to the orderer, then its
  commit status; an invalid commit is ``409 commit_invalid`` carrying the
  validation code name;
* :meth:`query` -- a read-only chaincode function evaluated with the
  HTTP-authenticated caller as the proposal creator (see ``docs/api.md``:
  queries write nothing, and the chaincode applies its own authorisation);
* :meth:`committed` and :meth:`state` -- what custodians read: a committed
  transaction by id (validation code, block, parsed envelope) and committed
  world state. Custodians never trust request bodies for these facts.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from chaincode import CHAINCODE_NAME, parse_error_message
from chaincode.codec import dumps
from crypto.identity import Identity
from gateway.errors import Conflict, GatewayError, RequestInvalid, Unavailable
from network.engine.endorser import Endorsement
from network.engine.errors import (
    CommitStatusError,
    EndorseError,
    NetworkClosedError,
    SubmitError,
)
from network.engine.network import EmbeddedNetwork, wait_status
from network.engine.proposal import Proposal, Transaction
from network.engine.simulation_pool import SimulationPoolError
from network.engine.statedb import VALID
from network.fabric.blocks import parse_block
from network.fabric.transactions import ParsedTransaction, parse_envelope
from network.fabric.validator import ChannelConfig, code_name
from policies.canonical import CanonicalJSONError

#: Fabric composite keys: U+0000 object type U+0000 (attribute U+0000)*.
_SEP: Final = "\x00"
_CHAINCODE_STATUS_CODES: Final = frozenset({400, 403, 404, 409})
_BLOCK_CACHE: Final = 8
#: How the endorser reports a chaincode error response (``network.engine.endorser``).
_ENDORSER_PREFIX: Final = re.compile(r"^chaincode response [0-9]+, ")


def composite_key(object_type: str, *attributes: str) -> str:
    """The composite key the chaincode's stub builds for ``object_type`` and ``attributes``."""
    return _SEP + "".join(part + _SEP for part in (object_type, *attributes))


def split_composite_key(key: str) -> list[str]:
    """The object type and attributes of a composite key (inverse of :func:`composite_key`)."""
    if not key.startswith(_SEP) or not key.endswith(_SEP):
        raise ValueError("not a composite key")
    return key[1:-1].split(_SEP)


def _simulation_unavailable(exc: SimulationPoolError, tx_id: str) -> Unavailable:
    """A simulation worker failed: the server's fault, so 503 and try again, never 400."""
    return Unavailable(exc.message, code="simulation_unavailable", tx_id=tx_id)


@dataclass(frozen=True)
class CommittedTransaction:
    """A transaction as the ledger holds it: validation code, block, decoded envelope."""

    tx_id: str
    block_number: int
    validation_code: int
    transaction: ParsedTransaction

    @property
    def valid(self) -> bool:
        return self.validation_code == VALID

    @property
    def validation_code_name(self) -> str:
        return code_name(self.validation_code)


@dataclass(frozen=True)
class CommitOutcome:
    """Where and how the committer validated a transaction this gateway submitted."""

    tx_id: str
    block_number: int
    validation_code: int

    @property
    def validation_code_name(self) -> str:
        return code_name(self.validation_code)


def _refusal(message: str, tx_id: str, status: int | None) -> GatewayError:
    """A chaincode refusal as a problem: the contract's code and (4xx) status.

    ``message`` is the contract's ``[code] text`` as a query sees it, or as
    the endorser reports it, behind ``chaincode response <status>, ``. Only
    that prefix is removed: the contract's own text may contain ", " too.
    """
    code, text = parse_error_message(_ENDORSER_PREFIX.sub("", message, count=1))
    if code == "chaincode_error":
        return GatewayError(
            "the chaincode refused the proposal", code="chaincode_error", status=400, tx_id=tx_id
        )
    http = status if status in _CHAINCODE_STATUS_CODES else 400
    if code == "internal_error":
        return GatewayError(
            "the chaincode failed", code="chaincode_failed", status=500, tx_id=tx_id
        )
    return GatewayError(text, code=code, status=http, tx_id=tx_id)


class LedgerClient:
    """The embedded network as the gateway uses it (see the module docstring)."""

    def __init__(self, network: EmbeddedNetwork, *, commit_timeout: float = 30.0) -> None:
        self.network = network
        self.commit_timeout = commit_timeout
        self.chaincode = CHAINCODE_NAME
        self._blocks: OrderedDict[int, tuple[bytes, ...]] = OrderedDict()
        self._lock = threading.Lock()

    # -- facts ---------------------------------------------------------------------------

    @property
    def channel(self) -> str:
        return self.network.channel_id

    @property
    def height(self) -> int:
        return self.network.height

    @property
    def tip_hash(self) -> bytes:
        return self.network.tip_hash

    def channel_at(self, height: int) -> ChannelConfig:
        """The channel config (members, CRLs) in force for a snapshot of ``height`` blocks."""
        return self.network.committer.channel_at(height)

    def running(self) -> bool:
        """Whether the network still accepts work."""
        network = self.network
        return not (network._closing or network._closed or network._failure is not None)

    # -- committed reads -------------------------------------------------------------------

    def state(self, key: str) -> bytes | None:
        """Committed world state of the chaincode at ``key`` (a consistent snapshot read)."""
        with self.network.store.snapshot() as view:
            found = view.get_state(self.chaincode, key)
        return None if found is None else found.value

    def states(self, keys: Sequence[str]) -> list[bytes | None]:
        """Committed world state at each of ``keys``, from one consistent snapshot."""
        return self.states_at(keys)[1]

    def states_at(self, keys: Sequence[str]) -> tuple[int, list[bytes | None]]:
        """:meth:`states`, with the ledger height of the snapshot they were read from."""
        with self.network.store.snapshot() as view:
            found = [view.get_state(self.chaincode, key) for key in keys]
            height = int(view.height)
        return height, [None if entry is None else entry.value for entry in found]

    def state_json(self, object_type: str, *attributes: str) -> dict[str, Any] | None:
        """The committed JSON object at a composite key, or ``None``."""
        data = self.state(composite_key(object_type, *attributes))
        if data is None:
            return None
        value = json.loads(data)
        return value if isinstance(value, dict) else None

    def committed(self, tx_id: str) -> CommittedTransaction | None:
        """The committed transaction ``tx_id`` (first occurrence, as Fabric reports), or None."""
        location = self.network.store.get_transaction(tx_id)
        if location is None:
            return None
        envelope = self._envelopes(location.block_num)[location.tx_num]
        return CommittedTransaction(
            tx_id=tx_id,
            block_number=location.block_num,
            validation_code=location.validation_code,
            transaction=parse_envelope(envelope, strict=False),
        )

    def _envelopes(self, number: int) -> tuple[bytes, ...]:
        """The envelopes of committed block ``number`` (a few recent blocks are cached).

        Committed blocks never change, and the requests of one burst all ask
        about the same few blocks: parsing each once matters under load.
        """
        with self._lock:
            cached = self._blocks.get(number)
            if cached is not None:
                self._blocks.move_to_end(number)
                return cached
        raw = self.network.store.get_block(number)
        if raw is None:
            raise Unavailable("the ledger is missing a block it indexes")
        envelopes = tuple(bytes(e) for e in parse_block(raw).data.data)
        with self._lock:
            self._blocks[number] = envelopes
            while len(self._blocks) > _BLOCK_CACHE:
                self._blocks.popitem(last=False)
        return envelopes

    def block_bytes(self, start: int, end: int) -> Iterator[bytes]:
        """Serialized blocks ``start .. end-1``."""
        for _, data in self.network.store.iter_blocks(start, end):
            yield data

    # -- queries -----------------------------------------------------------------------------

    async def query(
        self, caller: Identity, function: str, arg: Mapping[str, Any], *, now: datetime
    ) -> dict[str, Any]:
        """Evaluate a read-only chaincode function as ``caller``; nothing is ordered.

        ``arg`` carries what the caller sent (query parameters, record
        metadata): a value with no canonical JSON form -- an integer beyond
        the IEEE-754 safe range, a lone surrogate -- is ``422
        request_invalid``, and the contract is not asked.
        """
        try:
            encoded = dumps(dict(arg))
        except CanonicalJSONError as exc:
            raise RequestInvalid(
                f"the request holds a value with no canonical JSON form: {exc.message}"
            ) from exc
        proposal = Proposal.build(
            creator=caller.serialized(),
            channel_id=self.channel,
            chaincode_name=self.chaincode,
            function=function,
            args=[encoded],
            now=now,
        )
        if not self.running():
            raise Unavailable("the ledger network is not running")
        try:
            result = await self.network.endorser.simulate(proposal)
        except SimulationPoolError as exc:
            raise _simulation_unavailable(exc, proposal.tx_id) from exc
        status = int(result.response.status)
        if status >= 400:
            raise _refusal(str(result.response.message), proposal.tx_id, status)
        payload = bytes(result.response.payload)
        try:
            value = json.loads(payload) if payload else {}
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise GatewayError(
                "the chaincode answered something other than a JSON object",
                code="chaincode_failed",
                status=500,
            )
        return value

    # -- transactions -----------------------------------------------------------------------

    async def endorse(self, proposal: Proposal) -> Endorsement:
        """Check, simulate and endorse a caller-signed proposal."""
        try:
            return await self.network.endorse(proposal)
        except NetworkClosedError as exc:
            raise Unavailable("the ledger network is not running", tx_id=proposal.tx_id) from exc
        except EndorseError as exc:
            if isinstance(exc.__cause__, SimulationPoolError):
                raise _simulation_unavailable(exc.__cause__, proposal.tx_id) from exc
            if exc.status is None:
                raise GatewayError(
                    exc.message, code="proposal_rejected", status=400, tx_id=proposal.tx_id
                ) from exc
            raise _refusal(exc.message, proposal.tx_id, exc.status) from exc

    async def commit(self, transaction: Transaction) -> CommitOutcome:
        """Order a caller-signed transaction and wait for its block; raise unless VALID.

        The outcome is the committer's own notification for this envelope (the
        block it landed in, even if a duplicate of its id landed earlier); the
        ledger is not read back here. What must rest on the ledger -- a key
        release -- reads it by transaction id (:meth:`committed`).
        """
        tx_id = transaction.tx_id
        try:
            waiter = self.network.commit_waiter(tx_id, check_ledger=False)
        except NetworkClosedError as exc:
            raise Unavailable("the ledger network is not running", tx_id=tx_id) from exc
        try:
            await self.network.broadcast(transaction.envelope_bytes())
        except SubmitError as exc:
            self.network.forget_waiter(tx_id, waiter)
            raise Unavailable(
                "the orderer refused the transaction", code="submit_refused", tx_id=tx_id
            ) from exc
        except BaseException:
            self.network.forget_waiter(tx_id, waiter)
            raise
        try:
            status = await wait_status(self.network, tx_id, waiter, self.commit_timeout)
        except CommitStatusError as exc:
            raise GatewayError(
                "the transaction was ordered but its commit was not observed in time;"
                " look it up with GET /v1/transactions/{tx_id}",
                code="commit_timeout",
                status=504,
                tx_id=tx_id,
            ) from exc
        if status.validation_code != VALID:
            raise Conflict(
                f"transaction {tx_id} was committed as invalid in block {status.block_number}:"
                f" {code_name(status.validation_code)}; it changed nothing, propose again",
                code="commit_invalid",
                tx_id=tx_id,
                validation_code=code_name(status.validation_code),
                block_number=status.block_number,
            )
        return CommitOutcome(tx_id, status.block_number, status.validation_code)


__all__ = ["CommitOutcome", "CommittedTransaction", "LedgerClient", "composite_key"]
