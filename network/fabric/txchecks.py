"""A committing peer's checks of one transaction: steps 1-4 of :mod:`network.fabric.validator`.

:func:`check_transaction` parses an envelope and runs, in Fabric's order, the
checks that depend on the transaction alone and the configuration in force:
headers, the creator's membership and signature, an endorser transaction's
structure (tx id, single action, proposal hash), the channel and committed
duplicates, the validation plugin's endorsement policies (per namespace,
collection and key-level ``VALIDATION_PARAMETER``), and a config
transaction's ``last_update``. Each check that fails assigns the
``TxValidationCode`` a Fabric peer would; the codes' names and numbers are
here too (:data:`VALID`, :func:`code_name`).

The block-level steps -- duplicates within the block and MVCC -- need the
block's earlier transactions, so :func:`~network.fabric.validator.validate_block`
runs them after these. The names used outside this package are re-exported
from :mod:`network.fabric.validator`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.common import policies_pb2 as _policies_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf.message import DecodeError

from crypto.errors import VerificationError
from network.fabric.configtx import ConfigUpdateError, apply_update, config_update_from_envelope
from network.fabric.errors import MSPError, PolicyNotSatisfiedError, TransactionFormatError
from network.fabric.msp import MSPRegistry, ValidatedIdentity
from network.fabric.policy import EndorsementPolicies, Policy, SignaturePolicy
from network.fabric.transactions import (
    CONFIG,
    CONFIG_UPDATE,
    ENDORSER_TRANSACTION,
    NamespaceRWSet,
    ParsedTransaction,
    parse_envelope,
    proposal_hash,
)

if TYPE_CHECKING:
    from network.fabric.validator import ChannelConfig

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
policies_pb2: Any = _policies_pb2
transaction_pb2: Any = _transaction_pb2

_Code: Any = transaction_pb2.TxValidationCode
VALID: int = _Code.Value("VALID")
#: ``TxValidationCode`` numbers by name.
CODES = {name: int(value) for name, value in _Code.items()}

#: ``(namespace, collection or "", key) -> serialized SignaturePolicyEnvelope or None``.
ValidationParameterLookup = Callable[[str, str, str], bytes | None]


def code_name(code: int) -> str:
    """The ``TxValidationCode`` name of ``code``."""
    name: str = _Code.Name(code)
    return name


class _Invalid(Exception):
    """A check failed: the transaction gets ``code`` (a ``TxValidationCode`` name)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = CODES[code]
        self.reason = reason


def _check_creator(tx: ParsedTransaction, msps: MSPRegistry, now: datetime | None) -> None:
    try:
        msps.verify(tx.signed_data, now=now)
    except (MSPError, VerificationError) as exc:
        raise _Invalid("BAD_CREATOR_SIGNATURE", f"creator: {exc}") from exc


def _check_headers(tx: ParsedTransaction) -> None:
    if tx.header_type not in (ENDORSER_TRANSACTION, CONFIG, CONFIG_UPDATE):
        raise _Invalid("BAD_COMMON_HEADER", f"invalid header type {tx.header_type_name}")
    if tx.epoch != 0:
        raise _Invalid("BAD_COMMON_HEADER", f"epoch is {tx.epoch}, expected 0")
    if not tx.nonce or not tx.creator:
        raise _Invalid("BAD_COMMON_HEADER", "signature header lacks nonce or creator")


def _check_endorser_structure(tx: ParsedTransaction) -> None:
    if tx.tx_id != tx.expected_tx_id:
        raise _Invalid("BAD_PROPOSAL_TXID", "tx_id is not SHA-256(nonce || creator)")
    if tx.action_count != 1:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", f"{tx.action_count} actions, expected 1")
    error = tx.action_error
    if error is not None and error.validation_code == CODES["INVALID_ENDORSER_TRANSACTION"]:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", error.message)
    action = tx.action
    if action is None:
        return  # a later-stage decode failure, reported where the peer reports it
    header = common_pb2.SignatureHeader()
    try:
        header.ParseFromString(action.signature_header)
    except DecodeError as exc:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", "unreadable action header") from exc
    if not header.nonce or not header.creator:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", "action header lacks nonce or creator")
    expected = proposal_hash(
        tx.channel_header, action.signature_header, action.chaincode_proposal_payload
    )
    if expected != action.proposal_hash:
        raise _Invalid("INVALID_ENDORSER_TRANSACTION", "proposal hash does not match")


class _EndorsementCheck:
    """Fabric's v20 policy checker for one namespace of one transaction."""

    def __init__(
        self,
        namespace: str,
        cc_policy: Policy,
        policies: EndorsementPolicies,
        endorsers: Sequence[ValidatedIdentity],
        channel: ChannelConfig,
    ) -> None:
        self.namespace = namespace
        self.cc_policy = cc_policy
        self.policies = policies
        self.endorsers = endorsers
        self.channel = channel
        self.checked: set[str] = set()
        self.some_checked = False

    def _evaluate(self, policy: Policy, what: str) -> None:
        try:
            policy.evaluate_identities(self.endorsers)
        except PolicyNotSatisfiedError as exc:
            raise _Invalid("ENDORSEMENT_POLICY_FAILURE", f"{what}: {exc.message}") from exc
        self.some_checked = True

    def chaincode_policy_if_not_checked(self, collection: str) -> None:
        if collection:
            if collection in self.checked:
                return
            coll_policy = self.policies.collection(self.namespace, collection)
            if coll_policy is not None:
                self._evaluate(coll_policy, f"collection {collection} of {self.namespace}")
                self.checked.add(collection)
                return
        if "" in self.checked:
            return
        self._evaluate(self.cc_policy, f"endorsement policy of {self.namespace}")
        self.checked.add("")

    def key(self, collection: str, key: str, parameter: bytes | None) -> None:
        if not parameter:
            self.chaincode_policy_if_not_checked(collection)
            return
        envelope = policies_pb2.SignaturePolicyEnvelope()
        try:
            envelope.ParseFromString(parameter)
        except DecodeError as exc:
            raise _Invalid("ENDORSEMENT_POLICY_FAILURE", "unreadable key-level policy") from exc
        self._evaluate(SignaturePolicy(envelope, self.channel.msps), f"key-level policy of {key!r}")


def _check_endorsements(
    tx: ParsedTransaction,
    channel: ChannelConfig,
    policies: EndorsementPolicies,
    validation_parameter: ValidationParameterLookup | None,
    updated_parameters: set[tuple[str, str, str]],
    now: datetime | None,
) -> None:
    action = tx.action
    if action is None:
        error = tx.action_error
        assert error is not None
        raise _Invalid(code_name(error.validation_code), error.message)
    cc = action.chaincode_name
    if not cc or cc != action.action_chaincode_name:
        raise _Invalid(
            "INVALID_CHAINCODE",
            f"inconsistent chaincode ids {cc!r}, {action.action_chaincode_name!r}",
        )
    if not action.chaincode_version:
        raise _Invalid("INVALID_CHAINCODE", "chaincode action has no version")
    if action.event is not None and action.event.chaincode_id != cc:
        raise _Invalid("INVALID_OTHER_REASON", "chaincode event names another chaincode")
    seen: set[str] = set()
    written = [cc]
    for ns in action.rwsets:
        if ns.namespace in seen:
            raise _Invalid("ILLEGAL_WRITESET", f"duplicate namespace {ns.namespace!r}")
        seen.add(ns.namespace)
        if ns.has_writes and ns.namespace != cc:
            written.append(ns.namespace)
    endorsers = channel.msps.valid_identities(action.endorsement_signed_data(), now=now)
    for namespace in written:
        cc_policy = policies.namespace(namespace)
        if cc_policy is None:
            raise _Invalid("INVALID_CHAINCODE", f"chaincode {namespace!r} is not defined")
        check = _EndorsementCheck(namespace, cc_policy, policies, endorsers, channel)
        rwset = action.rwset(namespace)
        for collection, key in _written_keys(rwset):
            if (namespace, collection, key) in updated_parameters:
                raise _Invalid(
                    "ENDORSEMENT_POLICY_FAILURE",
                    f"key-level policy of {key!r} changed earlier in this block",
                )
            parameter = (
                validation_parameter(namespace, collection, key) if (validation_parameter) else None
            )
            check.key(collection, key, parameter)
        if not check.some_checked:
            check.chaincode_policy_if_not_checked("")


def _written_keys(rwset: NamespaceRWSet | None) -> list[tuple[str, str]]:
    if rwset is None:
        return []
    keys = [("", w.key) for w in rwset.writes]
    keys += [("", m.key) for m in rwset.metadata_writes]
    for coll in rwset.collections:
        keys += [(coll.collection, w.key_hash.hex()) for w in coll.writes]
        keys += [(coll.collection, m.key) for m in coll.metadata_writes]
    return keys


def _check_config(tx: ParsedTransaction, channel: ChannelConfig, now: datetime | None) -> None:
    """Fabric's ``ValidatorImpl.Validate``: the config is what ``last_update`` makes of ours."""
    envelope = tx.config_envelope
    if envelope is None:
        raise _Invalid("BAD_PAYLOAD", "config transaction without a config envelope")
    if tx.channel_id != channel.channel_id:
        raise _Invalid("INVALID_CONFIG_TRANSACTION", f"config for channel {tx.channel_id!r}")
    sequence = int(envelope.config.sequence)
    if sequence != channel.sequence + 1:
        raise _Invalid(
            "INVALID_CONFIG_TRANSACTION",
            f"config currently at sequence {channel.sequence}, cannot apply sequence {sequence}",
        )
    try:
        update = config_update_from_envelope(envelope.last_update)
        expected = apply_update(channel, update, now=now)
    except ConfigUpdateError as exc:
        raise _Invalid("INVALID_CONFIG_TRANSACTION", f"last_update: {exc.message}") from exc
    if expected != envelope.config:
        raise _Invalid(
            "INVALID_CONFIG_TRANSACTION",
            "the config is not the result of applying its last_update to the config in force",
        )


def check_transaction(
    number: int,
    raw: bytes,
    channel: ChannelConfig,
    policies: EndorsementPolicies,
    tx_id_exists: Callable[[str], bool],
    validation_parameter: ValidationParameterLookup | None,
    updated_parameters: set[tuple[str, str, str]],
    check_time: bool,
) -> tuple[ParsedTransaction | None, int, str]:
    """Steps 1-4 for the ``raw`` envelope at block ``number``: ``(parsed, code, reason)``.

    ``channel`` is the configuration in force; ``tx_id_exists`` answers for
    committed transactions; ``updated_parameters`` holds the key-level policies
    changed by earlier transactions of this block. With ``check_time``,
    certificates must be valid at the transaction's timestamp.
    """
    try:
        tx = parse_envelope(raw, strict=False)
    except TransactionFormatError as exc:
        return None, exc.validation_code, exc.message
    now = tx.timestamp if check_time else None
    try:
        if number == 0 and tx.header_type == CONFIG:
            return tx, VALID, ""  # the genesis config is the trust anchor
        _check_headers(tx)
        _check_creator(tx, channel.msps, now)
        if tx.header_type == ENDORSER_TRANSACTION:
            _check_endorser_structure(tx)
            if tx.channel_id != channel.channel_id:
                raise _Invalid("TARGET_CHAIN_NOT_FOUND", f"channel {tx.channel_id!r}")
            if tx_id_exists(tx.tx_id):
                raise _Invalid("DUPLICATE_TXID", "tx_id already committed")
            _check_endorsements(
                tx, channel, policies, validation_parameter, updated_parameters, now
            )
        elif tx.header_type == CONFIG:
            _check_config(tx, channel, now)
        else:
            raise _Invalid("UNSUPPORTED_TX_PAYLOAD", f"{tx.header_type_name} in a block")
    except _Invalid as invalid:
        return tx, invalid.code, invalid.reason
    return tx, VALID, ""
