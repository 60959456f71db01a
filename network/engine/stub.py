"""The chaincode stub of the embedded engine: fabric-chaincode-python's API over local state.

:class:`ChaincodeStub` implements ``fabric_shim.interfaces.ChaincodeStubInterface``
of fabric-chaincode-python 2.5.4 with the same method names, signatures, return
types and iterator classes, so a chaincode written for that shim (low-level
``Chaincode`` or the ``fabric_contract_api``) runs here unchanged. Instead of
messaging a peer, it simulates the transaction the way a Fabric peer's
transaction simulator does:

* reads see committed state only, never the transaction's own writes; each
  read is recorded with the version it saw (no version: key absent);
* range reads record a ``RangeQueryInfo`` (start, end, exhausted, raw reads),
  fetching 100 rows at a time as the peer does, so the validator can detect
  phantoms over exactly the part of the range the chaincode consumed;
* writes and deletes are buffered (last one per key wins); an empty value is
  a delete, as it is once a Fabric shim sends it over the wire;
* paginated queries are for read-only transactions: a write after one, or one
  after a write, is refused (Fabric's ``txSimulator`` rule);
* ``get_state`` of an absent key returns ``b""`` (the shim returns the empty
  peer payload); simple-key ranges start at ``"\\x01"`` when the start is
  empty, so composite keys (leading U+0000) never appear in them, as in the
  Go and Node shims;
* one chaincode event per transaction (a later ``set_event`` replaces it).

Deviations from the Python shim, all deliberate: ``get_creator`` returns the
shim's ``{"mspid", "idBytes"}`` dict (what its ``ClientIdentity`` reads);
paginated iterators carry their ``QueryResponseMetadata`` (bookmark, count) in
``.metadata``, which the shim drops; ``get_args``, ``get_string_args``,
``get_transient`` and ``get_signed_proposal`` follow the Go shim; composite-key
attributes containing U+0000 or U+10FFFF are refused, as in Go. Features the
embedded engine has no backing for -- private data, rich (CouchDB) queries,
key-level endorsement, chaincode-to-chaincode calls -- raise
:class:`UnsupportedStubOperation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fabric_chaincode_python.fabric_shim.interfaces import ChaincodeStubInterface
from fabric_protos.ledger.queryresult import kv_query_result_pb2 as _kv_query_result_pb2
from fabric_protos.ledger.rwset import rwset_pb2 as _rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as _kv_rwset_pb2
from fabric_protos.peer import chaincode_event_pb2 as _chaincode_event_pb2
from fabric_protos.peer import chaincode_shim_pb2 as _chaincode_shim_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2

from crypto.errors import AccessLedgerError
from network.engine.proposal import Proposal
from network.engine.rangescan import (
    HistoryQueryIterator,
    RangeScan,
    StateQueryIterator,
)
from network.engine.statedb import StateReader, Version

kv_query_result_pb2: Any = _kv_query_result_pb2
rwset_pb2: Any = _rwset_pb2
kv_rwset_pb2: Any = _kv_rwset_pb2
chaincode_event_pb2: Any = _chaincode_event_pb2
chaincode_shim_pb2: Any = _chaincode_shim_pb2
timestamp_pb2: Any = _timestamp_pb2

#: Composite keys start with this; simple keys must not.
COMPOSITE_KEY_NAMESPACE = "\x00"
#: Fabric's replacement for an empty range start, which keeps composite keys out.
EMPTY_KEY_SUBSTITUTE = "\x01"
_MIN_RUNE = "\x00"
_MAX_RUNE = "\U0010ffff"


class ChaincodeStubError(AccessLedgerError):
    """The chaincode misused the stub (bad key, write after a paginated query, ...)."""

    code = "chaincode_stub_error"


class UnsupportedStubOperation(ChaincodeStubError, NotImplementedError):
    """A stub method whose feature the embedded engine does not provide."""

    code = "chaincode_api_unsupported"


def _unsupported(name: str, why: str) -> UnsupportedStubOperation:
    return UnsupportedStubOperation(f"{name} is not supported by the embedded ledger engine: {why}")


@dataclass(frozen=True)
class SimulationResult:
    """What simulating one proposal produced: response, read-write set and event."""

    tx_id: str
    namespace: str
    response: Any  # peer.Response
    rwset: Any  # rwset.TxReadWriteSet
    event: Any | None  # peer.ChaincodeEvent

    @property
    def rwset_bytes(self) -> bytes:
        """The serialized ``TxReadWriteSet`` (``ChaincodeAction.results``)."""
        data: bytes = self.rwset.SerializeToString()
        return data

    @property
    def event_bytes(self) -> bytes:
        """The serialized ``ChaincodeEvent``, or ``b""`` (``ChaincodeAction.events``)."""
        if self.event is None:
            return b""
        data: bytes = self.event.SerializeToString()
        return data


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise ChaincodeStubError(f"key must be a string, got {type(key).__name__}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ChaincodeStubError(f"key {key!r} is not valid UTF-8") from exc
    return key


def _check_simple_key(key: str) -> None:
    _check_key(key)
    if key.startswith(COMPOSITE_KEY_NAMESPACE):
        raise ChaincodeStubError(
            f"first character of the key {key!r} contains a null character which is not allowed"
        )


def _check_composite_part(part: object) -> str:
    if not isinstance(part, str) or not part:
        raise ChaincodeStubError("object type or attribute not a non-zero length string")
    if _MIN_RUNE in part or _MAX_RUNE in part:
        raise ChaincodeStubError(
            f"composite key attribute {part!r} contains U+0000 or U+10FFFF, which are reserved"
        )
    return part


class ChaincodeStub(ChaincodeStubInterface):  # type: ignore[misc]
    """Simulates one proposal of one chaincode against committed state.

    ``state`` is what reads see -- ideally a :class:`~network.engine.statedb.StateSnapshot`
    so that every read of the simulation comes from one height. ``namespace``
    (the chaincode name by default) is where reads and writes go.
    """

    def __init__(
        self, proposal: Proposal, state: StateReader, *, namespace: str | None = None
    ) -> None:
        self._proposal = proposal
        self._state = state
        self.namespace = namespace or proposal.chaincode_name
        # The attributes fabric_shim's ChaincodeStub exposes.
        self.channel_id = proposal.channel_id
        self.tx_id = proposal.tx_id
        self.cc_input = proposal.chaincode_input
        self.proposal = proposal.message
        self.tx_timestamp = proposal.timestamp
        mspid, id_bytes = proposal.creator_identity
        self.creator = {"mspid": mspid, "idBytes": id_bytes}
        self._reads: dict[str, Version | None] = {}
        self._writes: dict[str, bytes | None] = {}
        self._ranges: list[RangeScan] = []
        self._event: Any | None = None
        self._paginated_query_done = False
        self._done = False

    # -- transaction context ---------------------------------------------------------

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        """The function name and its string parameters (UTF-8 decoded)."""
        args = self.get_string_args()
        if not args:
            raise ChaincodeStubError("no function name provided in transaction payload")
        return args[0], args[1:]

    def get_args(self) -> list[bytes]:
        """All arguments as bytes, function name first (Go ``GetArgs``)."""
        return [bytes(a) for a in self.cc_input.args]

    def get_string_args(self) -> list[str]:
        """All arguments as strings, function name first (Go ``GetStringArgs``)."""
        return [bytes(a).decode("utf-8") for a in self.cc_input.args]

    def get_txid(self) -> str:
        return self.tx_id

    def get_channel_id(self) -> str:
        return self.channel_id

    def get_creator(self) -> dict[str, Any]:
        """The submitter as the shim gives it: ``{"mspid": str, "idBytes": PEM bytes}``."""
        return dict(self.creator)

    def get_transient(self) -> dict[str, bytes]:
        """The proposal's transient map (never recorded on the ledger)."""
        return self._proposal.transient

    def get_tx_timestamp(self) -> Any:
        """The client's ``google.protobuf.Timestamp`` from the channel header."""
        return self.tx_timestamp

    def get_signed_proposal(self) -> Any | None:
        """The ``SignedProposal`` being simulated (``None`` for an unsigned local call)."""
        return self._proposal.signed_proposal() if self._proposal.signature else None

    # -- state -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._done:
            raise ChaincodeStubError(f"transaction {self.tx_id} has finished simulating")

    def _check_write(self, key: object) -> str:
        self._check_open()
        checked = _check_key(key)
        if not checked:
            raise ChaincodeStubError("key must not be an empty string")
        if self._paginated_query_done:
            raise ChaincodeStubError(
                f"txid [{self.tx_id}]: unsupported transaction. Transaction has already performed"
                " a paginated query. Writes are not allowed"
            )
        return checked

    async def get_state(self, key: str) -> bytes:
        """The committed value of ``key`` (``b""`` if absent); records the read version."""
        self._check_open()
        found = self._state.get_state(self.namespace, _check_key(key))
        self._reads[key] = found.version if found else None
        return found.value if found else b""

    async def put_state(self, key: str, value: bytes | bytearray | memoryview | str) -> None:
        """Buffer a write of ``value`` (``str`` is UTF-8 encoded; empty means delete)."""
        key = self._check_write(key)
        if isinstance(value, str):
            data = value.encode("utf-8")
        elif isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        else:
            raise ChaincodeStubError(f"value for key {key!r} must be bytes or str")
        self._writes[key] = data or None

    async def delete_state(self, key: str) -> None:
        """Buffer a delete of ``key``."""
        key = self._check_write(key)
        self._writes[key] = None

    def _begin_range(self, start_key: str, end_key: str, *, paginated: bool) -> RangeScan:
        self._check_open()
        if paginated:
            if self._writes:
                raise ChaincodeStubError(
                    f"txid [{self.tx_id}]: unsupported transaction. Paginated queries are"
                    " supported only in a read-only transaction"
                )
            self._paginated_query_done = True
        scan = RangeScan(self._state, self.namespace, start_key, end_key)
        self._ranges.append(scan)
        return scan

    async def get_state_by_range(self, start_key: str, end_key: str) -> StateQueryIterator:
        """Iterate keys in ``[start_key, end_key)``; empty bounds are open; no composite keys."""
        start_key = start_key or EMPTY_KEY_SUBSTITUTE
        _check_simple_key(start_key)
        _check_simple_key(end_key)
        scan = self._begin_range(start_key, end_key, paginated=False)
        return StateQueryIterator(scan.fetch(), scan.fetch)

    async def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> StateQueryIterator:
        """One page of :meth:`get_state_by_range`, starting at ``bookmark`` if given."""
        start_key = start_key or EMPTY_KEY_SUBSTITUTE
        _check_simple_key(start_key)
        _check_simple_key(end_key)
        return self._page(bookmark or start_key, end_key, page_size)

    def _page(self, start_key: str, end_key: str, page_size: int) -> StateQueryIterator:
        if not isinstance(page_size, int) or page_size < 1:
            raise ChaincodeStubError(f"page size must be a positive integer, got {page_size!r}")
        scan = self._begin_range(start_key, end_key, paginated=True)
        rows, next_bookmark = scan.fetch_page(page_size)
        iterator = StateQueryIterator(rows, None)
        iterator.metadata = chaincode_shim_pb2.QueryResponseMetadata(
            fetched_records_count=len(rows), bookmark=next_bookmark
        )
        return iterator

    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str:
        """``U+0000 objectType U+0000 (attribute U+0000)*``, as every Fabric shim builds it."""
        if isinstance(attributes, str | bytes) or not isinstance(attributes, Sequence):
            raise ChaincodeStubError("attributes must be an array")
        parts = [_check_composite_part(object_type)]
        parts.extend(_check_composite_part(a) for a in attributes)
        return COMPOSITE_KEY_NAMESPACE + "".join(p + _MIN_RUNE for p in parts)

    def split_composite_key(self, composite_key: str) -> tuple[str | None, list[str]]:
        """Return ``(objectType, attributes)``; ``(None, [])`` for a key that is not composite."""
        if not composite_key or len(composite_key) < 2 or composite_key[0] != _MIN_RUNE:
            return None, []
        parts = composite_key[1:].split(_MIN_RUNE)
        return parts[0], parts[1:-1]

    def _partial_range(self, object_type: str, attributes: Sequence[str]) -> tuple[str, str]:
        start = self.create_composite_key(object_type, attributes)
        return start, start + _MAX_RUNE

    async def get_state_by_partial_composite_key(
        self, object_type: str, attributes: Sequence[str]
    ) -> StateQueryIterator:
        """Iterate the composite keys that begin with ``object_type`` and ``attributes``."""
        start, end = self._partial_range(object_type, attributes)
        scan = self._begin_range(start, end, paginated=False)
        return StateQueryIterator(scan.fetch(), scan.fetch)

    async def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = ""
    ) -> StateQueryIterator:
        """One page of :meth:`get_state_by_partial_composite_key`."""
        start, end = self._partial_range(object_type, attributes)
        return self._page(bookmark or start, end, page_size)

    async def get_history_for_key(self, key: str) -> HistoryQueryIterator:
        """Iterate the committed writes of ``key``, newest first (not re-checked at validation)."""
        self._check_open()
        _check_key(key)
        entries = [
            kv_query_result_pb2.KeyModification(
                tx_id=h.tx_id,
                value=h.value,
                is_delete=h.is_delete,
                timestamp=timestamp_pb2.Timestamp(
                    seconds=h.timestamp_seconds, nanos=h.timestamp_nanos
                ),
            )
            for h in self._state.get_history(self.namespace, key)
        ]
        return HistoryQueryIterator(entries, None)

    def set_event(self, name: str, payload: bytes | str | None) -> None:
        """Set the transaction's chaincode event (one per transaction; the last one wins)."""
        self._check_open()
        if not isinstance(name, str) or not name:
            raise ChaincodeStubError("event name must be a non-empty string")
        if isinstance(payload, str):
            data = payload.encode("utf-8")
        elif isinstance(payload, bytes | bytearray | memoryview):
            data = bytes(payload)
        elif payload is None:
            data = b""
        else:
            raise ChaincodeStubError("event payload must be bytes, str or None")
        self._event = chaincode_event_pb2.ChaincodeEvent(
            chaincode_id=self.namespace, tx_id=self.tx_id, event_name=name, payload=data
        )

    # -- unsupported -------------------------------------------------------------------

    async def get_query_result(self, query: str) -> StateQueryIterator:
        raise _unsupported("get_query_result", "rich queries need CouchDB; state is key-value")

    async def get_query_result_with_pagination(
        self, query: str, page_size: int, bookmark: str = ""
    ) -> StateQueryIterator:
        raise _unsupported("get_query_result_with_pagination", "rich queries need CouchDB")

    async def invoke_chaincode(
        self, chaincode_name: str, args: Sequence[Any], channel: str = ""
    ) -> Any:
        raise _unsupported("invoke_chaincode", "it hosts a single chaincode")

    def set_state_validation_parameter(self, *args: Any) -> None:
        raise _unsupported("set_state_validation_parameter", "no key-level endorsement")

    def get_state_validation_parameter(self, *args: Any) -> None:
        raise _unsupported("get_state_validation_parameter", "no key-level endorsement")

    def _private(self, name: str) -> UnsupportedStubOperation:
        return _unsupported(name, "there are no private data collections")

    def get_private_data(self, *args: Any) -> None:
        raise self._private("get_private_data")

    def get_private_data_hash(self, *args: Any) -> None:
        raise self._private("get_private_data_hash")

    def put_private_data(self, *args: Any) -> None:
        raise self._private("put_private_data")

    def delete_private_data(self, *args: Any) -> None:
        raise self._private("delete_private_data")

    def set_private_data_validation_parameter(self, *args: Any) -> None:
        raise self._private("set_private_data_validation_parameter")

    def get_private_data_validation_parameter(self, *args: Any) -> None:
        raise self._private("get_private_data_validation_parameter")

    def get_private_data_by_range(self, *args: Any) -> None:
        raise self._private("get_private_data_by_range")

    def get_private_data_by_partial_composite_key(self, *args: Any) -> None:
        raise self._private("get_private_data_by_partial_composite_key")

    def get_private_data_query_result(self, *args: Any) -> None:
        raise self._private("get_private_data_query_result")

    # -- results -----------------------------------------------------------------------

    def read_write_set(self) -> Any:
        """The ``TxReadWriteSet`` recorded so far (keys sorted, as Fabric's builder sorts)."""
        kv = kv_rwset_pb2.KVRWSet()
        for key in sorted(self._reads):
            version = self._reads[key]
            read = kv.reads.add(key=key)
            if version is not None:
                read.version.block_num = version.block_num
                read.version.tx_num = version.tx_num
        kv.range_queries_info.extend(scan.to_proto() for scan in self._ranges)
        for key in sorted(self._writes):
            value = self._writes[key]
            kv.writes.add(key=key, is_delete=value is None, value=value or b"")
        txrw = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
        if kv.reads or kv.range_queries_info or kv.writes:
            # Like Fabric's builder, a namespace the chaincode never touched is left out.
            txrw.ns_rwset.add(namespace=self.namespace, rwset=kv.SerializeToString())
        return txrw

    def simulation_result(self, response: Any) -> SimulationResult:
        """Close the simulation and return ``response`` with the read-write set and event."""
        self._check_open()
        self._done = True
        return SimulationResult(
            tx_id=self.tx_id,
            namespace=self.namespace,
            response=response,
            rwset=self.read_write_set(),
            event=self._event,
        )
