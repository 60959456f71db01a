"""Decode Fabric transaction envelopes into plain, typed Python values.

:func:`parse_envelope` turns the bytes of one ``common.Envelope`` (an entry of
``block.data.data``) into a :class:`ParsedTransaction`: the headers, the
creator, the signature and the bytes it covers, and for endorser transactions
the single chaincode action with its invocation, endorsements, read-write set,
response and event. Every byte string a signature covers is kept exactly as it
appeared on the wire; nothing is re-serialised before verification.

Parsing checks structure only. Whether signatures verify, identities are
members and policies hold is :mod:`network.fabric.validator`'s job. A decode
failure raises :class:`~network.fabric.errors.TransactionFormatError` carrying
the ``TxValidationCode`` a Fabric peer records for that failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.common import configtx_pb2 as _configtx_pb2
from fabric_protos.ledger.rwset import rwset_pb2 as _rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as _kv_rwset_pb2
from fabric_protos.msp import identities_pb2 as _identities_pb2
from fabric_protos.peer import chaincode_event_pb2 as _chaincode_event_pb2
from fabric_protos.peer import chaincode_pb2 as _chaincode_pb2
from fabric_protos.peer import proposal_pb2 as _proposal_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf.message import DecodeError

from network.fabric.errors import TransactionFormatError
from network.fabric.rwset import CollectionRWSet as CollectionRWSet
from network.fabric.rwset import HashedRead as HashedRead
from network.fabric.rwset import HashedWrite as HashedWrite
from network.fabric.rwset import KVMetadataWrite as KVMetadataWrite
from network.fabric.rwset import KVRead as KVRead
from network.fabric.rwset import KVWrite as KVWrite
from network.fabric.rwset import NamespaceRWSet as NamespaceRWSet
from network.fabric.rwset import RangeQuery as RangeQuery
from network.fabric.rwset import Version as Version
from network.fabric.rwset import decode_message as _decode
from network.fabric.rwset import hashed_namespace as hashed_namespace
from network.fabric.rwset import parse_rwset as parse_rwset

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
configtx_pb2: Any = _configtx_pb2
rwset_pb2: Any = _rwset_pb2
kv_rwset_pb2: Any = _kv_rwset_pb2
identities_pb2: Any = _identities_pb2
chaincode_event_pb2: Any = _chaincode_event_pb2
chaincode_pb2: Any = _chaincode_pb2
proposal_pb2: Any = _proposal_pb2
proposal_response_pb2: Any = _proposal_response_pb2
transaction_pb2: Any = _transaction_pb2


_Code: Any = transaction_pb2.TxValidationCode
_Header: Any = common_pb2.HeaderType

ENDORSER_TRANSACTION: int = _Header.Value("ENDORSER_TRANSACTION")
CONFIG: int = _Header.Value("CONFIG")
CONFIG_UPDATE: int = _Header.Value("CONFIG_UPDATE")


@dataclass(frozen=True, slots=True)
class SignedData:
    """One signature to check: who (a serialized ``SerializedIdentity``), what, and the signature.

    The same shape as Fabric's ``protoutil.SignedData``; policies are evaluated
    over lists of these.
    """

    identity: bytes
    data: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Endorsement:
    """One endorser's signature over ``proposal_response_payload || endorser``."""

    endorser: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class ChaincodeResponse:
    """The chaincode's response as the endorsers recorded it."""

    status: int
    message: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ChaincodeEvent:
    """The event a chaincode set with ``SetEvent`` (at most one per transaction)."""

    chaincode_id: str
    tx_id: str
    event_name: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ChaincodeActionInfo:
    """The one chaincode action of an endorser transaction.

    ``chaincode_name`` is the invoked chaincode from the channel header
    extension; ``action_chaincode_name``/``chaincode_version`` come from the
    endorsed ``ChaincodeAction`` (Fabric requires the names to agree).
    """

    signature_header: bytes
    chaincode_name: str
    action_chaincode_name: str
    chaincode_version: str
    args: tuple[bytes, ...]
    is_init: bool
    chaincode_proposal_payload: bytes
    proposal_response_payload: bytes
    proposal_hash: bytes
    endorsements: tuple[Endorsement, ...]
    results: bytes
    rwsets: tuple[NamespaceRWSet, ...]
    response: ChaincodeResponse
    event: ChaincodeEvent | None

    @property
    def function(self) -> str | None:
        """The first argument decoded as UTF-8 (the function name), if any."""
        if not self.args:
            return None
        return self.args[0].decode("utf-8", errors="replace")

    def endorsement_signed_data(self) -> list[SignedData]:
        """Each endorsement as the :class:`SignedData` Fabric's validator checks."""
        prp = self.proposal_response_payload
        return [SignedData(e.endorser, prp + e.endorser, e.signature) for e in self.endorsements]

    def rwset(self, namespace: str) -> NamespaceRWSet | None:
        """The read-write set of ``namespace``, or ``None`` if it was not touched."""
        return next((ns for ns in self.rwsets if ns.namespace == namespace), None)


@dataclass(frozen=True, slots=True)
class ParsedTransaction:
    """One decoded envelope.

    ``payload`` is exactly what ``signature`` covers; ``creator`` is the
    serialized ``SerializedIdentity`` from the signature header (empty for
    Fabric's unsigned genesis config transaction). ``action`` is set for
    endorser transactions with exactly one action; ``action_count`` says how
    many there were (Fabric rejects any other number). ``config_envelope`` is
    set for CONFIG transactions.
    """

    envelope: bytes
    payload: bytes
    signature: bytes
    header_type: int
    channel_id: str
    tx_id: str
    epoch: int
    timestamp: datetime | None
    timestamp_nanos: int
    channel_header: bytes
    signature_header: bytes
    channel_header_extension: bytes
    creator: bytes
    creator_msp_id: str
    creator_id_bytes: bytes
    nonce: bytes
    action_count: int
    action: ChaincodeActionInfo | None
    action_error: TransactionFormatError | None
    config_envelope: Any

    @property
    def header_type_name(self) -> str:
        """The ``HeaderType`` name (``"ENDORSER_TRANSACTION"``, ``"CONFIG"``...)."""
        try:
            name: str = _Header.Name(self.header_type)
        except ValueError:
            return str(self.header_type)
        return name

    @property
    def signed_data(self) -> SignedData:
        """The creator's signature over the payload, as Fabric checks it."""
        return SignedData(self.creator, self.payload, self.signature)

    @property
    def expected_tx_id(self) -> str:
        """``hex(SHA-256(nonce || creator))``, what ``tx_id`` must equal."""
        return compute_tx_id(self.nonce, self.creator)

    @property
    def chaincode_name(self) -> str | None:
        """The invoked chaincode, for endorser transactions."""
        return self.action.chaincode_name if self.action else None


def compute_tx_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction ID: lowercase hex of SHA-256 over ``nonce || creator``."""
    return hashlib.sha256(nonce + creator).hexdigest()


def proposal_hash(channel_header: bytes, signature_header: bytes, proposal_payload: bytes) -> bytes:
    """Fabric's ``GetProposalHash2``: SHA-256 over the two headers and the visible payload."""
    return hashlib.sha256(channel_header + signature_header + proposal_payload).digest()


def decode_identity(serialized: bytes) -> tuple[str, bytes]:
    """Split a ``SerializedIdentity`` into ``(mspid, id_bytes)``."""
    sid = _decode(
        identities_pb2.SerializedIdentity(), serialized, "serialized identity", "BAD_COMMON_HEADER"
    )
    return str(sid.mspid), bytes(sid.id_bytes)


def _invocation(proposal_payload: bytes) -> tuple[tuple[bytes, ...], bool]:
    # Informational only: Fabric's validation hashes these bytes but never decodes
    # them, so an undecodable invocation is not an invalid transaction.
    try:
        cpp = proposal_pb2.ChaincodeProposalPayload.FromString(proposal_payload)
        cis = chaincode_pb2.ChaincodeInvocationSpec.FromString(cpp.input)
    except (DecodeError, ValueError, RuntimeError):
        return (), False
    chaincode_input = cis.chaincode_spec.input
    return tuple(bytes(a) for a in chaincode_input.args), bool(chaincode_input.is_init)


def _chaincode_action(action: Any, channel_header_extension: bytes) -> ChaincodeActionInfo:
    cap = _decode(
        transaction_pb2.ChaincodeActionPayload(),
        action.payload,
        "chaincode action payload",
        "INVALID_ENDORSER_TRANSACTION",
    )
    prp_bytes = bytes(cap.action.proposal_response_payload)
    prp = _decode(
        proposal_response_pb2.ProposalResponsePayload(),
        prp_bytes,
        "proposal response payload",
        "INVALID_ENDORSER_TRANSACTION",
    )
    cc_action = _decode(
        proposal_pb2.ChaincodeAction(), prp.extension, "chaincode action", "BAD_RESPONSE_PAYLOAD"
    )
    header_ext = _decode(
        proposal_pb2.ChaincodeHeaderExtension(),
        channel_header_extension,
        "chaincode header extension",
        "BAD_HEADER_EXTENSION",
    )
    event = None
    if cc_action.events:
        ev = _decode(
            chaincode_event_pb2.ChaincodeEvent(),
            cc_action.events,
            "chaincode event",
            "INVALID_OTHER_REASON",
        )
        event = ChaincodeEvent(
            str(ev.chaincode_id), str(ev.tx_id), str(ev.event_name), bytes(ev.payload)
        )
    args, is_init = _invocation(bytes(cap.chaincode_proposal_payload))
    response = cc_action.response
    return ChaincodeActionInfo(
        signature_header=bytes(action.header),
        chaincode_name=str(header_ext.chaincode_id.name),
        action_chaincode_name=str(cc_action.chaincode_id.name),
        chaincode_version=str(cc_action.chaincode_id.version),
        args=args,
        is_init=is_init,
        chaincode_proposal_payload=bytes(cap.chaincode_proposal_payload),
        proposal_response_payload=prp_bytes,
        proposal_hash=bytes(prp.proposal_hash),
        endorsements=tuple(
            Endorsement(bytes(e.endorser), bytes(e.signature)) for e in cap.action.endorsements
        ),
        results=bytes(cc_action.results),
        rwsets=parse_rwset(bytes(cc_action.results)),
        response=ChaincodeResponse(
            int(response.status), str(response.message), bytes(response.payload)
        ),
        event=event,
    )


def _timestamp(channel_header: Any) -> tuple[datetime | None, int]:
    if not channel_header.HasField("timestamp"):
        return None, 0
    seconds = int(channel_header.timestamp.seconds)
    nanos = int(channel_header.timestamp.nanos)
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=nanos // 1000)
    return when, seconds * 1_000_000_000 + nanos


def parse_envelope(envelope: bytes, *, strict: bool = True) -> ParsedTransaction:
    """Decode one ``common.Envelope`` (raw bytes from ``block.data.data``).

    Raises :class:`TransactionFormatError` (with the Fabric validation code)
    if any layer cannot be decoded. With ``strict=False`` a failure inside the
    endorser transaction body (below the signed headers) is recorded in
    ``action_error`` instead, so a validator can report it at the point in
    Fabric's order of checks where the peer would.
    """
    if not envelope:
        raise TransactionFormatError("empty envelope", validation_code=_Code.Value("NIL_ENVELOPE"))
    env = _decode(common_pb2.Envelope(), envelope, "envelope", "INVALID_OTHER_REASON")
    payload_bytes = bytes(env.payload)
    payload = _decode(common_pb2.Payload(), payload_bytes, "payload", "BAD_PAYLOAD")
    if not payload.HasField("header"):
        raise TransactionFormatError(
            "payload has no header", validation_code=_Code.Value("BAD_COMMON_HEADER")
        )
    ch_bytes = bytes(payload.header.channel_header)
    sh_bytes = bytes(payload.header.signature_header)
    chdr = _decode(common_pb2.ChannelHeader(), ch_bytes, "channel header", "BAD_COMMON_HEADER")
    shdr = _decode(common_pb2.SignatureHeader(), sh_bytes, "signature header", "BAD_COMMON_HEADER")
    creator = bytes(shdr.creator)
    try:
        msp_id, id_bytes = decode_identity(creator) if creator else ("", b"")
    except TransactionFormatError:
        # Fabric decodes the creator only when checking its signature, so an
        # undecodable creator is a BAD_CREATOR_SIGNATURE, found by the MSP.
        msp_id, id_bytes = "", b""
    timestamp, nanos = _timestamp(chdr)

    action = None
    action_error = None
    action_count = 0
    config_envelope = None
    header_type = int(chdr.type)
    if header_type == ENDORSER_TRANSACTION:
        tx = _decode(
            transaction_pb2.Transaction(),
            payload.data,
            "transaction",
            "INVALID_ENDORSER_TRANSACTION",
        )
        action_count = len(tx.actions)
        if action_count == 1:
            try:
                action = _chaincode_action(tx.actions[0], bytes(chdr.extension))
            except TransactionFormatError as exc:
                if strict:
                    raise
                action_error = exc
    elif header_type == CONFIG:
        config_envelope = _decode(
            configtx_pb2.ConfigEnvelope(), payload.data, "config envelope", "BAD_PAYLOAD"
        )

    return ParsedTransaction(
        envelope=envelope,
        payload=payload_bytes,
        signature=bytes(env.signature),
        header_type=header_type,
        channel_id=str(chdr.channel_id),
        tx_id=str(chdr.tx_id),
        epoch=int(chdr.epoch),
        timestamp=timestamp,
        timestamp_nanos=nanos,
        channel_header=ch_bytes,
        signature_header=sh_bytes,
        channel_header_extension=bytes(chdr.extension),
        creator=creator,
        creator_msp_id=msp_id,
        creator_id_bytes=id_bytes,
        nonce=bytes(shdr.nonce),
        action_count=action_count,
        action=action,
        action_error=action_error,
        config_envelope=config_envelope,
    )


def config_update_signed_data(config_envelope: Any) -> list[SignedData]:
    """The signatures on a config transaction's ``last_update`` (the admins' approvals).

    Each ``ConfigSignature`` covers ``signature_header || config_update``; the
    ``CONFIG_UPDATE`` envelope's own signature (the submitter's) is included
    too when present.
    """
    last_update = config_envelope.last_update
    if not last_update.payload:
        return []
    code = "INVALID_CONFIG_TRANSACTION"
    payload = _decode(common_pb2.Payload(), last_update.payload, "config update payload", code)
    cue = _decode(configtx_pb2.ConfigUpdateEnvelope(), payload.data, "config update envelope", code)
    out = []
    for sig in cue.signatures:
        shdr = _decode(common_pb2.SignatureHeader(), sig.signature_header, "signature header", code)
        out.append(
            SignedData(
                bytes(shdr.creator),
                bytes(sig.signature_header) + bytes(cue.config_update),
                bytes(sig.signature),
            )
        )
    if last_update.signature:
        shdr = _decode(
            common_pb2.SignatureHeader(), payload.header.signature_header, "signature header", code
        )
        out.append(
            SignedData(
                bytes(shdr.creator), bytes(last_update.payload), bytes(last_update.signature)
            )
        )
    return out


def channel_config(envelopes: Sequence[bytes]) -> Any:
    """Return the ``configtx.Config`` carried by a config block's (only) envelope.

    ``envelopes`` is ``block.data.data``. Raises :class:`TransactionFormatError`
    if the block is not a config block.
    """
    if len(envelopes) != 1:
        raise TransactionFormatError(
            "a config block holds exactly one transaction",
            validation_code=_Code.Value("INVALID_CONFIG_TRANSACTION"),
        )
    parsed = parse_envelope(bytes(envelopes[0]))
    if parsed.header_type != CONFIG or parsed.config_envelope is None:
        raise TransactionFormatError(
            f"not a config transaction (header type {parsed.header_type_name})",
            validation_code=_Code.Value("INVALID_CONFIG_TRANSACTION"),
        )
    return parsed.config_envelope.config
