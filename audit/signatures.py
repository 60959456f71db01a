"""Signature checks that can be done ahead of time, in other processes.

Replay is sequential (MVCC needs the state left by every earlier block), but
checking an ECDSA signature needs only the signer's public key, the signed
bytes and the signature. So signatures are verified in worker processes
(:func:`verify_chunk`), and the replay's membership and policy checks then
consult a :class:`SignatureOracle` holding the *keys* of the signatures a
worker verified. A key binds all three inputs (:func:`signature_key`), so an
entry can only ever vouch for exactly the bytes that were verified; anything
not in the oracle is verified on the spot. Workers never decide validity:
a signature they could not verify is simply absent and gets re-checked, and
failed there, by the replay itself with Fabric's error.

:class:`CheckingRegistry` plugs the oracle into
:mod:`network.fabric`'s validator without changing it: it is an
:class:`~network.fabric.msp.MSPRegistry` whose identities verify through the
oracle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf.message import DecodeError

from crypto.errors import VerificationError
from crypto.signing import verify
from network.fabric import blocks
from network.fabric.errors import FabricError
from network.fabric.msp import MSPRegistry, ValidatedIdentity
from network.fabric.policy import PolicyManager
from network.fabric.transactions import (
    CONFIG,
    ENDORSER_TRANSACTION,
    SignedData,
    config_update_signed_data,
    decode_identity,
    parse_envelope,
)
from network.fabric.validator import ChannelConfig

common_pb2: Any = _common_pb2
transaction_pb2: Any = _transaction_pb2

_IDENTITY_CACHE_LIMIT = 4096


def identity_digest(identity: bytes) -> bytes:
    """SHA-256 of a serialized identity: how signature keys name the signer."""
    return hashlib.sha256(identity).digest()


def signature_key(identity_hash: bytes, data: bytes, signature: bytes) -> bytes:
    """``sha256(identity) || sha256(data) || signature``: one triple, unambiguously."""
    return identity_hash + hashlib.sha256(data).digest() + signature


class SignatureOracle:
    """Signature keys known to verify, plus counters for the report.

    ``ahead`` holds the keys a worker process verified (replaced per chunk of
    blocks by :meth:`trust`). ``memo`` remembers, per signature, the signer
    and bytes verified here or found in ``ahead``, so a signature looked at
    twice within a block (validation, then the endorsement audit) is checked
    once. :meth:`check` is what replay calls.
    """

    def __init__(self) -> None:
        self.ahead: set[bytes] = set()
        self.memo: dict[bytes, tuple[bytes, bytes]] = {}
        self.verified_ahead = 0
        self.verified_here = 0

    @property
    def verified(self) -> int:
        """Distinct signatures verified so far, here or ahead."""
        return self.verified_ahead + self.verified_here

    def trust(self, keys: Iterable[bytes]) -> None:
        """Replace the worker-verified keys (the next chunk's results)."""
        self.ahead = set(keys)

    def forget(self) -> None:
        """Drop the memo (called per block, so memory stays bounded)."""
        self.memo.clear()

    def seen(self, identity: bytes, data: bytes, signature: bytes) -> bool:
        """Whether this block already accepted exactly this signer, bytes and signature."""
        known = self.memo.get(signature)
        return known is not None and known[0] == identity and known[1] == data

    def check(self, identity: CheckedIdentity, data: bytes, signature: bytes) -> None:
        """Raise :class:`VerificationError` unless ``signature`` by ``identity`` covers ``data``."""
        if self.seen(identity.serialized, data, signature):
            return
        if signature_key(identity.identity_hash, data, signature) in self.ahead:
            self.verified_ahead += 1
        else:
            ValidatedIdentity.verify(identity, data, signature)
            self.verified_here += 1
        self.memo[signature] = (identity.serialized, data)


@dataclass(frozen=True, slots=True)
class CheckedIdentity(ValidatedIdentity):
    """A validated identity whose signatures go through a :class:`SignatureOracle`."""

    identity_hash: bytes
    #: Latest ``notBefore`` and earliest ``notAfter`` of the certificate chain.
    valid_from: datetime
    valid_until: datetime
    oracle: SignatureOracle = field(compare=False, repr=False)

    @classmethod
    def wrap(cls, identity: ValidatedIdentity, oracle: SignatureOracle) -> CheckedIdentity:
        values = {f.name: getattr(identity, f.name) for f in fields(ValidatedIdentity)}
        return cls(
            **values,
            identity_hash=identity_digest(identity.serialized),
            valid_from=max(c.not_valid_before_utc for c in identity.chain),
            valid_until=min(c.not_valid_after_utc for c in identity.chain),
            oracle=oracle,
        )

    def verify(self, data: bytes, signature: bytes) -> None:
        self.oracle.check(self, data, signature)


class CheckingRegistry(MSPRegistry):
    """The same MSPs as ``base``, handing out :class:`CheckedIdentity` objects."""

    def __init__(self, base: MSPRegistry, oracle: SignatureOracle) -> None:
        super().__init__(list(base.msps.values()))
        self.oracle = oracle
        self._checked: dict[bytes, CheckedIdentity] = {}

    def deserialize(self, serialized: bytes, *, now: datetime | None = None) -> ValidatedIdentity:
        checked = self._checked.get(serialized)
        # Same outcome as the base class, which checks every certificate of the chain at
        # ``now``; only a failure goes back to it, for its error.
        if checked is not None and (
            now is None or checked.valid_from <= now <= checked.valid_until
        ):
            return checked
        identity = super().deserialize(serialized, now=now)
        if checked is None:
            if len(self._checked) >= _IDENTITY_CACHE_LIMIT:
                self._checked.clear()
            checked = CheckedIdentity.wrap(identity, self.oracle)
            self._checked[serialized] = checked
        return checked


def checked_channel(channel: ChannelConfig, oracle: SignatureOracle) -> ChannelConfig:
    """``channel`` with its MSPs (and the policies built on them) checking through ``oracle``."""
    if isinstance(channel.msps, CheckingRegistry) and channel.msps.oracle is oracle:
        return channel
    registry = CheckingRegistry(channel.msps, oracle)
    return ChannelConfig(
        channel.channel_id, channel.config, registry, PolicyManager(channel.config, registry)
    )


# --- the worker side ----------------------------------------------------------------


def _endorser_signatures(envelope: Any, payload: Any) -> Iterator[SignedData]:
    """Creator and endorsement signatures of an endorser transaction, decoding only headers.

    This is the hot loop of a parallel replay, so it skips what
    :func:`~network.fabric.transactions.parse_envelope` decodes for
    validation (read-write sets, proposal payloads) and yields exactly the
    :class:`SignedData` that parse would produce.
    """
    shdr = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
    if shdr.creator:
        yield SignedData(bytes(shdr.creator), bytes(envelope.payload), bytes(envelope.signature))
    tx = transaction_pb2.Transaction.FromString(payload.data)
    if len(tx.actions) != 1:
        return
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    prp = bytes(cap.action.proposal_response_payload)
    for e in cap.action.endorsements:
        endorser = bytes(e.endorser)
        yield SignedData(endorser, prp + endorser, bytes(e.signature))


def signed_data_of_block(block: Any) -> Iterator[SignedData]:
    """Every signature a replay of ``block`` will check: orderer, creators, endorsers, config."""
    try:
        orderer = blocks.block_signatures(block)
    except FabricError:
        orderer = []
    yield from orderer
    for raw in block.data.data:
        try:
            envelope = common_pb2.Envelope.FromString(raw)
            payload = common_pb2.Payload.FromString(envelope.payload)
            header_type = common_pb2.ChannelHeader.FromString(payload.header.channel_header).type
            if header_type == ENDORSER_TRANSACTION:
                yield from _endorser_signatures(envelope, payload)
                continue
            tx = parse_envelope(bytes(raw))
        except (DecodeError, FabricError):
            continue
        if tx.creator:
            yield tx.signed_data
        if header_type == CONFIG and tx.config_envelope is not None:
            try:
                yield from config_update_signed_data(tx.config_envelope)
            except FabricError:
                continue


def _public_key(serialized: bytes, cache: dict[bytes, tuple[Any, bytes]]) -> tuple[Any, bytes]:
    """``(public key or None, identity digest)`` of a serialized identity, cached."""
    found = cache.get(serialized)
    if found is not None:
        return found
    key: ec.EllipticCurvePublicKey | None = None
    try:
        _, id_bytes = decode_identity(serialized)
        candidate = x509.load_pem_x509_certificate(id_bytes).public_key()
        if isinstance(candidate, ec.EllipticCurvePublicKey):
            key = candidate
    except (FabricError, ValueError):
        key = None
    if len(cache) >= _IDENTITY_CACHE_LIMIT:
        cache.clear()
    cache[serialized] = (key, identity_digest(serialized))
    return cache[serialized]


def verify_chunk(raw_blocks: list[bytes]) -> list[bytes]:
    """Worker entry point: the keys of every signature in ``raw_blocks`` that verifies.

    Membership is not checked here (that needs the configuration in force);
    only that the certificate's public key made the signature over the bytes.
    """
    keys: dict[bytes, tuple[Any, bytes]] = {}
    out = []
    for raw in raw_blocks:
        try:
            block = blocks.parse_block(raw)
        except FabricError:
            continue
        for sd in signed_data_of_block(block):
            public_key, digest = _public_key(sd.identity, keys)
            if public_key is None:
                continue
            try:
                verify(public_key, sd.data, sd.signature)
            except VerificationError:
                continue
            out.append(signature_key(digest, sd.data, sd.signature))
    return out
