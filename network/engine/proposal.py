"""Client-side transaction objects in the style of fabric-gateway: proposals and transactions.

A :class:`Proposal` is the ``peer.Proposal`` a client signs to ask endorsers
to run a chaincode function, built exactly as the Fabric Gateway client SDK
builds it: an ``ENDORSER_TRANSACTION`` channel header whose ``tx_id`` is the
lowercase hex SHA-256 of ``nonce || creator`` (24 random nonce bytes), a
``ChaincodeHeaderExtension`` naming the chaincode, a ``SignatureHeader`` with
the creator's ``SerializedIdentity`` and the nonce, and a
``ChaincodeProposalPayload`` holding the ``ChaincodeInvocationSpec`` and the
transient map. The same object parses proposals received from elsewhere.

:func:`create_proposal_response` is what an endorsing peer returns (Fabric's
``protoutil.CreateProposalResponse`` with the default ESCC), and
:func:`create_transaction` / :func:`create_signed_transaction` assemble the
transaction envelope from the proposal and its endorsements exactly as
``protoutil.CreateSignedTx`` does, transient data stripped.

Signing is injected: a :data:`crypto.signing.Signer` callable signs the exact
bytes; :meth:`Proposal.digest` and :meth:`Transaction.digest` expose the
SHA-256 that an offline signer would sign instead.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.msp import identities_pb2 as _identities_pb2
from fabric_protos.peer import chaincode_pb2 as _chaincode_pb2
from fabric_protos.peer import proposal_pb2 as _proposal_pb2
from fabric_protos.peer import proposal_response_pb2 as _proposal_response_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2

from crypto.errors import AccessLedgerError, VerificationError
from crypto.signing import Signer, verify
from network.fabric.transactions import compute_tx_id, proposal_hash

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
identities_pb2: Any = _identities_pb2
chaincode_pb2: Any = _chaincode_pb2
proposal_pb2: Any = _proposal_pb2
proposal_response_pb2: Any = _proposal_response_pb2
transaction_pb2: Any = _transaction_pb2
timestamp_pb2: Any = _timestamp_pb2

#: Fabric's nonce length (``crypto.GetRandomNonce``).
NONCE_SIZE = 24
ENDORSER_TRANSACTION: int = common_pb2.HeaderType.Value("ENDORSER_TRANSACTION")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ProposalError(AccessLedgerError):
    """A proposal or transaction cannot be built or parsed; the message says why."""

    code = "proposal_invalid"


class EndorsementMismatchError(ProposalError):
    """Proposal responses cannot form a transaction (failed, or payloads differ)."""

    code = "endorsement_mismatch"


def timestamp_from_datetime(now: datetime) -> Any:
    """A ``google.protobuf.Timestamp`` for a timezone-aware ``now`` (microsecond precision)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    delta = now.astimezone(UTC) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def _as_bytes(arg: str | bytes) -> bytes:
    return arg.encode("utf-8") if isinstance(arg, str) else bytes(arg)


def _decode(message: Any, data: bytes, what: str) -> Any:
    try:
        message.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ProposalError(f"cannot decode {what}: {exc}") from exc
    return message


@dataclass(frozen=True)
class Proposal:
    """A chaincode proposal: its exact bytes, transaction id and (once signed) signature."""

    proposal_bytes: bytes
    tx_id: str
    signature: bytes | None = None

    @classmethod
    def build(
        cls,
        *,
        creator: bytes,
        channel_id: str,
        chaincode_name: str,
        function: str,
        args: Sequence[str | bytes] = (),
        transient: Mapping[str, bytes] | None = None,
        now: datetime,
        nonce: bytes | None = None,
        is_init: bool = False,
    ) -> Proposal:
        """Build an unsigned proposal to call ``function(*args)`` on ``chaincode_name``.

        ``creator`` is the caller's serialized ``SerializedIdentity``
        (``Identity.serialized()``). ``nonce`` defaults to 24 fresh random
        bytes; pass one only to reproduce a proposal.
        """
        if not chaincode_name:
            raise ProposalError("chaincode name is required")
        nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
        tx_id = compute_tx_id(nonce, creator)
        extension = proposal_pb2.ChaincodeHeaderExtension(
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode_name)
        )
        channel_header = common_pb2.ChannelHeader(
            type=ENDORSER_TRANSACTION,
            timestamp=timestamp_from_datetime(now),
            channel_id=channel_id,
            tx_id=tx_id,
            epoch=0,
            extension=extension.SerializeToString(),
        )
        signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
        header = common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=signature_header.SerializeToString(),
        )
        invocation = chaincode_pb2.ChaincodeInvocationSpec(
            chaincode_spec=chaincode_pb2.ChaincodeSpec(
                chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode_name),
                input=chaincode_pb2.ChaincodeInput(
                    args=[function.encode("utf-8"), *(_as_bytes(a) for a in args)],
                    is_init=is_init,
                ),
            )
        )
        payload = proposal_pb2.ChaincodeProposalPayload(
            input=invocation.SerializeToString(), TransientMap=dict(transient or {})
        )
        message = proposal_pb2.Proposal(
            header=header.SerializeToString(), payload=payload.SerializeToString()
        )
        return cls(proposal_bytes=message.SerializeToString(), tx_id=tx_id)

    @classmethod
    def from_bytes(cls, proposal_bytes: bytes, signature: bytes | None = None) -> Proposal:
        """Parse proposal bytes; checks the structure and that the tx id derives from the header."""
        message = _decode(proposal_pb2.Proposal(), proposal_bytes, "proposal")
        header = _decode(common_pb2.Header(), message.header, "proposal header")
        channel_header = _decode(
            common_pb2.ChannelHeader(), header.channel_header, "channel header"
        )
        signature_header = _decode(
            common_pb2.SignatureHeader(), header.signature_header, "signature header"
        )
        if channel_header.type != ENDORSER_TRANSACTION:
            raise ProposalError(
                f"proposal header type {channel_header.type} is not a chaincode call"
            )
        expected = compute_tx_id(signature_header.nonce, signature_header.creator)
        if channel_header.tx_id != expected:
            raise ProposalError(
                f"transaction id {channel_header.tx_id!r} does not derive from nonce and creator",
                code="bad_tx_id",
            )
        proposal = cls(proposal_bytes=bytes(proposal_bytes), tx_id=expected, signature=signature)
        proposal.invocation_spec  # noqa: B018 -- decode eagerly so malformed payloads fail here
        return proposal

    @classmethod
    def from_signed(cls, signed: Any) -> Proposal:
        """Parse a ``SignedProposal`` (message or bytes); the signature is not verified here."""
        if isinstance(signed, bytes | bytearray):
            signed = _decode(proposal_pb2.SignedProposal(), bytes(signed), "signed proposal")
        return cls.from_bytes(bytes(signed.proposal_bytes), bytes(signed.signature) or None)

    # -- signing -------------------------------------------------------------------

    def __bytes__(self) -> bytes:
        return self.proposal_bytes

    def digest(self) -> bytes:
        """SHA-256 of the proposal bytes: what an offline ECDSA signer signs."""
        return hashlib.sha256(self.proposal_bytes).digest()

    def sign(self, signer: Signer) -> Proposal:
        """Return this proposal signed by ``signer`` (the creator's key)."""
        return replace(self, signature=signer(self.proposal_bytes))

    def with_signature(self, signature: bytes) -> Proposal:
        """Return this proposal carrying a signature made elsewhere (offline signing)."""
        return replace(self, signature=signature)

    def signed_proposal(self) -> Any:
        """The ``peer.SignedProposal`` sent to endorsers; raises if not signed yet."""
        if self.signature is None:
            raise ProposalError(f"proposal {self.tx_id} is not signed", code="proposal_unsigned")
        return proposal_pb2.SignedProposal(
            proposal_bytes=self.proposal_bytes, signature=self.signature
        )

    def verify_signature(self) -> None:
        """Verify the signature with the creator's certificate key (not its MSP validity).

        Raises :class:`~crypto.errors.VerificationError`.
        """
        if self.signature is None:
            raise VerificationError(f"proposal {self.tx_id} is not signed")
        _, id_bytes = self.creator_identity
        try:
            key = x509.load_pem_x509_certificate(id_bytes).public_key()
        except ValueError as exc:
            raise VerificationError("proposal creator is not a PEM certificate") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError("proposal creator does not hold an ECDSA key")
        verify(key, self.proposal_bytes, self.signature)

    # -- decoded views ---------------------------------------------------------------

    @cached_property
    def message(self) -> Any:
        """The decoded ``peer.Proposal``."""
        return _decode(proposal_pb2.Proposal(), self.proposal_bytes, "proposal")

    @cached_property
    def header(self) -> Any:
        """The decoded ``common.Header`` (its two fields are the exact signed bytes)."""
        return _decode(common_pb2.Header(), self.message.header, "proposal header")

    @cached_property
    def channel_header(self) -> Any:
        """The decoded ``common.ChannelHeader``."""
        return _decode(common_pb2.ChannelHeader(), self.header.channel_header, "channel header")

    @cached_property
    def signature_header(self) -> Any:
        """The decoded ``common.SignatureHeader``."""
        return _decode(
            common_pb2.SignatureHeader(), self.header.signature_header, "signature header"
        )

    @cached_property
    def payload(self) -> Any:
        """The decoded ``peer.ChaincodeProposalPayload`` (with the transient map)."""
        return _decode(
            proposal_pb2.ChaincodeProposalPayload(), self.message.payload, "proposal payload"
        )

    @cached_property
    def invocation_spec(self) -> Any:
        """The decoded ``peer.ChaincodeInvocationSpec``."""
        return _decode(
            chaincode_pb2.ChaincodeInvocationSpec(), self.payload.input, "chaincode invocation"
        )

    @property
    def channel_id(self) -> str:
        return str(self.channel_header.channel_id)

    @property
    def chaincode_name(self) -> str:
        return str(self.invocation_spec.chaincode_spec.chaincode_id.name)

    @property
    def creator(self) -> bytes:
        """The creator's serialized ``SerializedIdentity``."""
        return bytes(self.signature_header.creator)

    @cached_property
    def creator_identity(self) -> tuple[str, bytes]:
        """The creator as ``(mspid, id_bytes)``; ``id_bytes`` is its PEM certificate."""
        identity = _decode(identities_pb2.SerializedIdentity(), self.creator, "creator identity")
        return str(identity.mspid), bytes(identity.id_bytes)

    @property
    def nonce(self) -> bytes:
        return bytes(self.signature_header.nonce)

    @property
    def timestamp(self) -> Any:
        """The client's ``google.protobuf.Timestamp`` from the channel header."""
        return self.channel_header.timestamp

    @property
    def chaincode_input(self) -> Any:
        """The ``peer.ChaincodeInput`` (args and ``is_init``)."""
        return self.invocation_spec.chaincode_spec.input

    @property
    def args(self) -> list[bytes]:
        """All arguments, the function name first."""
        return [bytes(a) for a in self.chaincode_input.args]

    @property
    def is_init(self) -> bool:
        return bool(self.chaincode_input.is_init)

    @property
    def transient(self) -> dict[str, bytes]:
        """The transient map (never written to the ledger)."""
        return {str(k): bytes(v) for k, v in self.payload.TransientMap.items()}

    def proposal_hash(self) -> bytes:
        """Fabric's ``GetProposalHash1``: what a response's ``proposal_hash`` must equal.

        SHA-256 over the channel header, the signature header and the payload
        with the transient map removed.
        """
        return proposal_hash(
            bytes(self.header.channel_header),
            bytes(self.header.signature_header),
            self.payload_for_transaction(),
        )

    def payload_for_transaction(self) -> bytes:
        """The proposal payload as it goes into the transaction: transient map stripped."""
        stripped = proposal_pb2.ChaincodeProposalPayload(input=self.payload.input)
        data: bytes = stripped.SerializeToString()
        return data


def create_proposal_response(
    proposal: Proposal,
    *,
    response: Any,
    results: bytes,
    events: bytes,
    chaincode_name: str,
    chaincode_version: str,
    endorser: bytes,
    signer: Signer,
) -> Any:
    """An endorsing peer's signed ``peer.ProposalResponse`` for a successful simulation.

    ``response`` is the chaincode's ``peer.Response`` (status below 400),
    ``results`` the serialized ``TxReadWriteSet`` and ``events`` the serialized
    ``ChaincodeEvent`` (or ``b""``). ``endorser`` is the peer's serialized
    identity; ``signer`` signs ``payload || endorser`` as Fabric's default ESCC
    does. A failed simulation is never endorsed, so a status >= 400 raises.
    """
    if not 200 <= response.status < 400:
        raise EndorsementMismatchError(
            f"chaincode response status {response.status} cannot be endorsed: {response.message}"
        )
    action = proposal_pb2.ChaincodeAction(
        results=results,
        events=events,
        response=response,
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode_name, version=chaincode_version),
    )
    payload = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=proposal.proposal_hash(), extension=action.SerializeToString()
    ).SerializeToString()
    return proposal_response_pb2.ProposalResponse(
        version=1,
        response=response,
        payload=payload,
        endorsement=proposal_response_pb2.Endorsement(
            endorser=endorser, signature=signer(payload + endorser)
        ),
    )


@dataclass(frozen=True)
class Transaction:
    """A transaction ready to be signed by the proposal's creator and sent for ordering."""

    payload_bytes: bytes
    tx_id: str
    signature: bytes | None = None

    def __bytes__(self) -> bytes:
        return self.payload_bytes

    def digest(self) -> bytes:
        """SHA-256 of the payload bytes: what an offline ECDSA signer signs."""
        return hashlib.sha256(self.payload_bytes).digest()

    def sign(self, signer: Signer) -> Transaction:
        """Return this transaction signed by ``signer`` (must be the proposal's creator)."""
        return replace(self, signature=signer(self.payload_bytes))

    def with_signature(self, signature: bytes) -> Transaction:
        return replace(self, signature=signature)

    def envelope(self) -> Any:
        """The ``common.Envelope`` for the orderer; raises if not signed yet."""
        if self.signature is None:
            raise ProposalError(f"transaction {self.tx_id} is not signed", code="proposal_unsigned")
        return common_pb2.Envelope(payload=self.payload_bytes, signature=self.signature)

    def envelope_bytes(self) -> bytes:
        data: bytes = self.envelope().SerializeToString()
        return data


def create_transaction(
    proposal: Proposal, responses: Sequence[Any], *, creator: bytes | None = None
) -> Transaction:
    """Assemble the unsigned transaction from a proposal and its endorsements.

    Follows ``protoutil.CreateSignedTx``: at least one response; every
    response successful (200 <= status < 400) with bitwise-equal payloads;
    their endorsements, in order, in one ``ChaincodeEndorsedAction``; the
    proposal payload without its transient map. When ``creator`` is given it
    must equal the proposal's creator, as Fabric checks its signer.
    """
    if not responses:
        raise EndorsementMismatchError("at least one proposal response is required")
    if creator is not None and creator != proposal.creator:
        raise ProposalError("signer must be the same as the one referenced in the header")
    first = bytes(responses[0].payload)
    for index, resp in enumerate(responses):
        if not 200 <= resp.response.status < 400:
            raise EndorsementMismatchError(
                f"proposal response {index} was not successful, error code"
                f" {resp.response.status}, msg {resp.response.message}"
            )
        if bytes(resp.payload) != first:
            raise EndorsementMismatchError(f"proposal response {index} payload does not match")
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal.payload_for_transaction(),
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=first,
            endorsements=[r.endorsement for r in responses],
        ),
    )
    transaction = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=proposal.header.signature_header,
                payload=action_payload.SerializeToString(),
            )
        ]
    )
    payload = common_pb2.Payload(header=proposal.header, data=transaction.SerializeToString())
    return Transaction(payload_bytes=payload.SerializeToString(), tx_id=proposal.tx_id)


def create_signed_transaction(
    proposal: Proposal, responses: Sequence[Any], signer: Signer, *, creator: bytes | None = None
) -> Any:
    """``protoutil.CreateSignedTx``: the signed ``common.Envelope`` for the orderer."""
    return create_transaction(proposal, responses, creator=creator).sign(signer).envelope()
