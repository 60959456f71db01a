"""Operator jobs through the gateway: read the channel configuration, submit config updates.

Changing *who is on the network* is a channel configuration update, exactly
as on Hyperledger Fabric: an admin builds a ``ConfigUpdate`` (add an
organisation's MSP, add a CRL to revoke a certificate), collects the
``ConfigSignature`` of enough admins to satisfy each modified element's
``mod_policy``, wraps it in a signed ``CONFIG_UPDATE`` envelope and hands it
to the ordering service, which validates it against the current config and
commits the result as a config block (:func:`network.fabric.configtx.apply_update`).

The gateway adds nothing to that decision. It only checks that the HTTP
caller is the envelope's creator (so the audit trail's "who" is the same on
both) and that the caller is an admin (:func:`policies.operator.require_admin`);
the policy evaluation is the orderer's, and an auditor replaying the ledger
re-evaluates it from the blocks. Changing *what the chaincode accepts*
(``AddDepartment``, ``InstallPolicy``) goes through the ordinary caller-signed
transaction flow (``/v1/transactions``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crypto.errors import AccessLedgerError
from crypto.identity import Identity
from gateway.errors import Forbidden, GatewayError, RequestInvalid
from gateway.service.membership import ChannelMembership
from gateway.service.transactions import decode_base64
from network.engine.errors import CommitStatusError, ConfigUpdateRefusedError, EngineError
from network.engine.network import EmbeddedNetwork
from network.fabric.blocks import last_config_index
from network.fabric.configtx import config_update_from_envelope
from network.fabric.configupdate import ConfigUpdateError
from network.fabric.transactions import CONFIG_UPDATE, parse_envelope
from policies.governance import Approval, signer_certificate
from policies.operator import require_admin

#: HTTP status per refusal code; the rest (a stale read set) are 409.
_REFUSAL_STATUS = {
    "config_update_unauthorized": 403,  # a mod_policy is not satisfied by the signatures
    "config_update_refused": 403,  # the creator is not a valid channel writer
    "network_closed": 503,
    "invalid_config_update": 422,  # a malformed update: bad input, not a conflict
}

#: A config update envelope is small (an MSP is a few kilobytes); refuse anything absurd early.
MAX_CONFIG_UPDATE_BYTES = 1 << 20


@dataclass(frozen=True)
class ConfigBlock:
    """The config block in force: its number, config sequence and serialized ``common.Block``."""

    block_number: int
    sequence: int
    block: bytes

    def encoded(self) -> str:
        return base64.b64encode(self.block).decode("ascii")


@dataclass(frozen=True)
class ConfigUpdateCommitted:
    """A committed config update."""

    tx_id: str
    block_number: int
    sequence: int


def current_config_block(network: EmbeddedNetwork) -> ConfigBlock:
    """The last config block of the channel (what ``peer channel fetch config`` returns)."""
    tip = network.get_block(network.height - 1)
    number = last_config_index(tip)
    block = network.get_block(number)
    return ConfigBlock(
        block_number=number,
        sequence=network.channel.sequence,
        block=block.SerializeToString(),
    )


def _creator_is_caller(envelope: bytes, caller: Identity, channel_id: str) -> str:
    """The envelope's tx id, after checking it is a CONFIG_UPDATE created by ``caller``."""
    try:
        parsed = parse_envelope(envelope, strict=False)
    except AccessLedgerError as exc:
        # Our words only: the decoder's message quotes the protobuf library's own text.
        raise RequestInvalid(
            "the config update envelope is not a decodable common.Envelope with a payload,"
            " channel header and signature header",
            code="config_update_invalid",
        ) from exc
    if parsed.header_type != CONFIG_UPDATE:
        raise RequestInvalid(
            f"the envelope has header type {parsed.header_type}, not CONFIG_UPDATE",
            code="config_update_invalid",
        )
    if parsed.channel_id != channel_id:
        raise RequestInvalid(
            f"the config update is for channel {parsed.channel_id!r}, not {channel_id!r}",
            code="config_update_invalid",
        )
    if parsed.creator != caller.serialized():
        raise Forbidden(
            "the config update envelope must be created and signed by the caller",
            code="creator_mismatch",
        )
    try:
        config_update_from_envelope(envelope)
    except ConfigUpdateError as exc:
        # Checked here so the orderer's refusal, which quotes the decoder, never has to be.
        raise RequestInvalid(
            "the config update envelope's payload is not a decodable ConfigUpdateEnvelope",
            code="config_update_invalid",
        ) from exc
    return parsed.tx_id


def refuse_revoked_approvals(argument: Mapping[str, Any], membership: ChannelMembership) -> None:
    """Refuse governance approvals signed with a certificate revoked on the channel.

    ``AddDepartment`` and ``InstallPolicy`` carry admins' approvals inside
    their argument; the contract checks them against the pinned roots but
    cannot see the channel's CRLs, and the MSP check covers only the
    transaction's creator. A stolen admin key whose certificate was revoked
    must not count towards a majority (``403 approval_revoked``). Malformed
    approvals are left to the contract, which refuses them with its own code.
    """
    items = argument.get("approvals")
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        try:
            certificate = signer_certificate(Approval.from_dict(item).signer)
        except (AccessLedgerError, TypeError, ValueError):
            continue
        if membership.revoked_anywhere(certificate):
            raise Forbidden(
                f"approval {index} is signed with a certificate revoked on the channel",
                code="approval_revoked",
            )


async def submit_config_update(
    network: EmbeddedNetwork, caller: Identity, encoded: str
) -> ConfigUpdateCommitted:
    """Order a caller-created, admin-signed config update; answer once its block is committed."""
    try:
        require_admin(caller)
    except AccessLedgerError as exc:
        raise Forbidden(exc.message, code=exc.code) from exc
    envelope = decode_base64(encoded, "envelope")
    if len(envelope) > MAX_CONFIG_UPDATE_BYTES:
        raise RequestInvalid(
            f"the config update envelope exceeds {MAX_CONFIG_UPDATE_BYTES} bytes",
            code="config_update_invalid",
        )
    tx_id = _creator_is_caller(envelope, caller, network.channel_id)
    try:
        committed = await network.update_config(envelope)
    except ConfigUpdateRefusedError as exc:
        raise GatewayError(
            f"the ordering service refused the config update: {exc.message}",
            code=exc.code,
            status=_REFUSAL_STATUS.get(exc.code, 409),
            tx_id=tx_id,
        ) from exc
    except CommitStatusError as exc:
        raise GatewayError(
            "the config update was ordered but its block was not committed in time",
            code="commit_timeout",
            status=504,
            tx_id=tx_id,
        ) from exc
    except EngineError as exc:
        raise GatewayError(
            f"the config update failed: {exc.message}", code=exc.code, status=503, tx_id=tx_id
        ) from exc
    return ConfigUpdateCommitted(
        tx_id=committed.tx_id, block_number=committed.block_number, sequence=committed.sequence
    )
