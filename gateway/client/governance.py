"""SDK flows for operator jobs: the channel config, config updates, departments, policy.

Like :mod:`gateway.client.flows`, each function is a generator of HTTP calls
(sans I/O), driven by ``Client.run`` or ``AsyncClient.run``::

    with Client.from_home(home, "admin.publicsecurity") as client:
        snapshot = client.run(governance.config_block(client.operations))

The gateway never signs on an operator's behalf: config updates arrive as
envelopes the caller built and signed (with the other admins'
``ConfigSignature`` inside), chaincode governance as caller-signed proposals.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import common_pb2 as _common_pb2
from google.protobuf.message import DecodeError

from crypto.errors import AccessLedgerError
from gateway.client.errors import ProtocolError
from gateway.client.flows import Operations
from gateway.client.http import Call
from gateway.client.models import Committed
from gateway.client.session import GENERIC_ENDPOINT, Flow
from policies.bundle import PolicyBundle

common_pb2: Any = _common_pb2

CONFIG_PATH = "/v1/governance/config"
CONFIG_UPDATES_PATH = "/v1/governance/config-updates"


@dataclass(frozen=True)
class ConfigSnapshot:
    """The channel's config block in force, as the gateway served it."""

    block_number: int
    sequence: int
    block: Any  # common.Block
    msp_ids: tuple[str, ...]


@dataclass(frozen=True)
class ConfigUpdateCommitted:
    """A config update's transaction, block and the new config sequence."""

    tx_id: str
    block_number: int
    sequence: int


def config_block(ops: Operations) -> Flow[ConfigSnapshot]:
    """``GET /v1/governance/config``: the config block in force."""
    answer = yield Call("GET", CONFIG_PATH)
    try:
        raw = base64.b64decode(str(answer["block"]), validate=True)
        block = common_pb2.Block.FromString(raw)
        return ConfigSnapshot(
            block_number=int(answer["block_number"]),
            sequence=int(answer["sequence"]),
            block=block,
            msp_ids=tuple(str(m) for m in answer.get("msp_ids", ())),
        )
    except (KeyError, TypeError, ValueError, binascii.Error, DecodeError) as exc:
        raise ProtocolError(f"the gateway's config block answer is unreadable: {exc}") from exc


def submit_config_update(ops: Operations, envelope: bytes) -> Flow[ConfigUpdateCommitted]:
    """``POST /v1/governance/config-updates`` with a CONFIG_UPDATE envelope this identity signed."""
    body = {"envelope": base64.b64encode(envelope).decode("ascii")}
    answer = yield Call("POST", CONFIG_UPDATES_PATH, body=body)
    try:
        return ConfigUpdateCommitted(
            tx_id=str(answer["tx_id"]),
            block_number=int(answer["block_number"]),
            sequence=int(answer["sequence"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"the gateway's config update answer is unreadable: {exc}") from exc


def _generic(ops: Operations, function: str, argument: Mapping[str, Any]) -> Flow[Committed]:
    answer = yield from ops.transact(GENERIC_ENDPOINT, function, lambda: argument)
    return Committed.from_json(answer)


def add_department(
    ops: Operations, department: Mapping[str, Any], approvals: Sequence[Mapping[str, str]]
) -> Flow[Committed]:
    """``AddDepartment``: let the contract accept a department a majority of admins approved."""
    argument = {"department": dict(department), "approvals": [dict(a) for a in approvals]}
    return (yield from _generic(ops, "AddDepartment", argument))


def install_policy(
    ops: Operations, bundle: PolicyBundle, approvals: Sequence[Mapping[str, str]]
) -> Flow[Committed]:
    """``InstallPolicy``: anchor a policy bundle a majority of department admins approved."""
    argument = {"bundle": bundle.to_dict(), "approvals": [dict(a) for a in approvals]}
    return (yield from _generic(ops, "InstallPolicy", argument))


@dataclass(frozen=True)
class AnchoredPolicy:
    """The policy in force: version, bundle hash and the parsed bundle (hash re-checked)."""

    version: int
    bundle_hash: str
    bundle: PolicyBundle


def anchored_policy(ops: Operations) -> Flow[AnchoredPolicy]:
    """``GET /v1/governance/policy``; the bundle must hash to the announced bundle hash."""
    answer = yield Call("GET", "/v1/governance/policy")
    try:
        bundle = PolicyBundle.from_dict(answer["bundle"])
        version, bundle_hash = int(answer["version"]), str(answer["bundle_hash"])
    except (KeyError, TypeError, ValueError, AccessLedgerError) as exc:
        raise ProtocolError(f"the gateway's policy answer is unreadable: {exc}") from exc
    if bundle.bundle_hash != bundle_hash or bundle.version != version:
        raise ProtocolError("the policy bundle served does not match its announced hash")
    return AnchoredPolicy(version=version, bundle_hash=bundle_hash, bundle=bundle)
