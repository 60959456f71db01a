"""The contract's view of one transaction: its id, its time and its world state.

:class:`Ledger` wraps a ``fabric_shim`` ``ChaincodeStubInterface`` (the
Python shim's on Fabric, the embedded engine's stub otherwise) and is the
only place the contract touches it. It adds three things the stub lacks:

* canonical JSON values (:func:`chaincode.codec.dumps`) on every write;
* read-your-writes for point reads: a Fabric simulation never shows a
  transaction its own writes, so the ledger keeps them in an overlay;
* the state layout below, as named composite keys.

State layout (composite keys are ``U+0000 type U+0000 (attr U+0000)*``)::

    config                                  departments and their root CAs (InitLedger)
    policy                                  pointer to the anchored policy version
    policy_bundle  <version:08d>            the bundle's canonical bytes (hash = bundle hash)
    policy_meta    <version:08d>            who approved it, when, in which transaction
    record         <record_id>              current version of a record
    record_version <record_id> <v:08d>      every version of a record (amendment history)
    erasure        <record_id>              who erased a record, when, why (hash); index of erasures
    subject_record <subject> <record_id>    index: records about a subject -> type, owner
    access         <event_id>               one access event per RequestAccess
    subject_access <subject> <time> <event_id>          index by subject
    officer_access <msp_id> <fingerprint> <time> <event_id>  index by officer
    dept_access    <org> <day> <time> <event_id>        index by department and day
    open_review    <event_id>               events waiting for an auditor
    nonce          <msp_id> <fingerprint> <nonce>       used signed-document nonces
    enc_key        <msp_id> <fingerprint>  an identity's X25519 public key
    citizen        <msp_id> <fingerprint>  a citizen credential bound to a pseudonym
    consent        <subject> <consent_id>   consents granted by a subject

Index values are small canonical JSON documents, never empty: an empty value
is a delete once it crosses the Fabric shim.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any, Final

from chaincode.codec import dumps, format_time, time_from_timestamp
from chaincode.errors import InvalidArgument

CONFIG_KEY: Final = "config"
POLICY_KEY: Final = "policy"

POLICY_BUNDLE: Final = "policy_bundle"
POLICY_META: Final = "policy_meta"
RECORD: Final = "record"
RECORD_VERSION: Final = "record_version"
ERASURE: Final = "erasure"
SUBJECT_RECORD: Final = "subject_record"
ACCESS: Final = "access"
SUBJECT_ACCESS: Final = "subject_access"
OFFICER_ACCESS: Final = "officer_access"
DEPT_ACCESS: Final = "dept_access"
OPEN_REVIEW: Final = "open_review"
NONCE: Final = "nonce"
ENC_KEY: Final = "enc_key"
CITIZEN: Final = "citizen"
#: Index ``subject_citizen <subject> <msp_id> <fingerprint>``: the credentials bound to a subject.
SUBJECT_CITIZEN: Final = "subject_citizen"
#: Plain key written by ``InitLedger``: every citizen binding on this ledger is in
#: :data:`SUBJECT_CITIZEN`. Ledgers initialised before the index existed lack it.
CITIZEN_INDEX_KEY: Final = "citizen_index"
CONSENT: Final = "consent"

#: The value of index entries that need to carry nothing.
MARKER: Final = b"1"


def sequence_key(number: int) -> str:
    """A version number as a fixed-width key attribute, so versions sort numerically."""
    return f"{number:08d}"


class Ledger:
    """State access for one transaction (see the module docstring)."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._overlay: dict[str, bytes | None] = {}
        timestamp = stub.get_tx_timestamp()
        if timestamp is None:
            raise InvalidArgument("the proposal carries no transaction timestamp")
        #: The transaction id (Fabric: hex SHA-256 of nonce || creator).
        self.tx_id: str = str(stub.get_txid())
        #: The transaction time: the client's channel-header timestamp, never the wall clock.
        self.now: datetime = time_from_timestamp(timestamp)
        #: :attr:`now` formatted for the ledger.
        self.now_text: str = format_time(self.now)
        self._event_set = False

    @property
    def stub(self) -> Any:
        return self._stub

    def creator(self) -> tuple[str, bytes]:
        """The creator's ``(msp_id, id_bytes)`` as the shim decodes it from the proposal."""
        creator = self._stub.get_creator()
        if isinstance(creator, dict):
            msp_id, id_bytes = creator.get("mspid"), creator.get("idBytes")
        else:  # a SerializedIdentity message
            msp_id, id_bytes = getattr(creator, "mspid", None), getattr(creator, "id_bytes", None)
        if not isinstance(msp_id, str) or not isinstance(id_bytes, bytes | bytearray):
            raise InvalidArgument("the proposal has no creator identity")
        return msp_id, bytes(id_bytes)

    def key(self, object_type: str, *attributes: str) -> str:
        """The composite key ``object_type`` + ``attributes``."""
        key: str = self._stub.create_composite_key(object_type, list(attributes))
        return key

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` as this transaction sees it, or ``None`` if absent."""
        if key in self._overlay:
            return self._overlay[key]
        value = await self._stub.get_state(key)
        return bytes(value) if value else None

    async def get_json(self, key: str) -> dict[str, Any] | None:
        """The JSON object stored at ``key``, or ``None``."""
        value = await self.get(key)
        if value is None:
            return None
        document = json.loads(value)
        if not isinstance(document, dict):
            raise ValueError(f"state value at {key!r} is not a JSON object")
        return document

    async def put(self, key: str, value: bytes) -> None:
        """Write raw bytes (non-empty) to ``key``."""
        if not value:
            raise ValueError("empty state values are deletes on Fabric; write a marker instead")
        self._overlay[key] = value
        await self._stub.put_state(key, value)

    async def put_json(self, key: str, value: Any) -> None:
        """Write canonical JSON of ``value`` to ``key``."""
        await self.put(key, dumps(value))

    async def delete(self, key: str) -> None:
        self._overlay[key] = None
        await self._stub.delete_state(key)

    async def scan(
        self, object_type: str, attributes: Sequence[str] = (), *, limit: int | None = None
    ) -> list[tuple[list[str], bytes]]:
        """``(attributes, value)`` of committed keys under a partial composite key, in key order.

        Stops after ``limit`` entries when given (the iterator is closed, so
        exactly the keys consumed are recorded as read). This transaction's
        own writes are not seen: Fabric range reads never see them either.
        """
        found: list[tuple[list[str], bytes]] = []
        entries = self.entries(object_type, attributes)
        try:
            async for entry in entries:
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
        finally:
            await entries.aclose()
        return found

    async def entries(
        self, object_type: str, attributes: Sequence[str] = ()
    ) -> AsyncGenerator[tuple[list[str], bytes], None]:
        """:meth:`scan`, lazily: for a caller that stops once it has what it needs.

        An index read newest-page-first or bounded by time stops early instead
        of materialising every key under the prefix, so its cost follows the
        page it returns, not the index's size. Close the generator (``aclose``)
        when stopping early: that closes the state iterator.
        """
        iterator = await self._stub.get_state_by_partial_composite_key(
            object_type, list(attributes)
        )
        try:
            async for kv in iterator:
                _, parts = self._stub.split_composite_key(kv.key)
                yield list(parts), bytes(kv.value)
        finally:
            await iterator.aclose()

    def set_event(self, name: str, payload: Any) -> None:
        """Set the transaction's chaincode event (one per transaction) to canonical JSON."""
        if self._event_set:
            raise RuntimeError("a transaction sets at most one chaincode event")
        self._event_set = True
        self._stub.set_event(name, dumps(payload))
