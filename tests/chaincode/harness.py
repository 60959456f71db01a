"""Test support: the AccessLedger chaincode on the engine stub, committing straight to a StateDB.

:class:`LedgerHarness` simulates each call with the engine's ``ChaincodeHost``
against a snapshot of a real SQLite ``StateDB`` and, for a successful submit,
commits the write set in a real hash-chained block holding the properly
endorsed, signed transaction envelope. It skips what the pipeline adds
(ordering, endorsement-policy and MVCC validation): these tests are about the
contract. The clock is explicit: every call happens at ``harness.now``, which
advances one second per submitted transaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from chaincode import CHAINCODE_NAME, AccessLedgerChaincode, LedgerConfig, parse_error_message
from chaincode.signed import ACCESS_REQUEST_FORMAT, CONSENT_FORMAT, sign_document
from crypto.consortium import Consortium
from crypto.identity import Identity, IdentityKind, officer_attributes
from crypto.pseudonym import check_character, pseudonym
from network.engine.chaincode_host import ChaincodeHost
from network.engine.proposal import (
    Proposal,
    create_proposal_response,
    create_signed_transaction,
)
from network.engine.statedb import StateDB, StateWrite, TxIndexEntry
from network.engine.stub import SimulationResult
from network.fabric.blocks import block_header_hash, new_block
from policies.bundle import PolicyBundle
from policies.governance import Approval, sign_approval

CHANNEL = "accessledger"
SHENZHEN = "440300"
CHENGDU = "510100"
DEPARTMENT_ADMINS = (
    "admin.publicsecurity",
    "admin.hrss",
    "admin.housing",
    "admin.education",
    "admin.health",
    "admin.tax",
    "admin.civilaffairs",
    "admin.audit",
)


@dataclass(frozen=True)
class Result:
    """One call's outcome: status, decoded payload (or error code/text), event, raw simulation."""

    status: int
    payload: Any
    code: str | None
    message: str
    event_name: str | None
    event: Any
    simulation: SimulationResult

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def tx_id(self) -> str:
        return self.simulation.tx_id

    def writes(self) -> dict[str, bytes | None]:
        """Keys written by the simulation (``None``: deleted)."""
        out: dict[str, bytes | None] = {}
        for ns in self.simulation.rwset.ns_rwset:
            kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
            for write in kv.writes:
                out[write.key] = None if write.is_delete else bytes(write.value)
        return out


def ledger_config(consortium: Consortium, **kwargs: Any) -> LedgerConfig:
    """The departments of the demo consortium (the orderer org is not a department)."""
    return LedgerConfig.from_consortium(consortium, **kwargs)


def approvals(bundle: PolicyBundle, admins: Sequence[Identity]) -> list[dict[str, str]]:
    """Approvals of ``bundle`` by ``admins``, as InstallPolicy takes them."""
    return [sign_approval(bundle, a.serialized(), a.signer).to_dict() for a in admins]


def approval(bundle: PolicyBundle, identity: Identity) -> Approval:
    return sign_approval(bundle, identity.serialized(), identity.signer)


def identity_number(sequence: int, *, region: str = SHENZHEN, born: str = "19900101") -> str:
    """A valid GB 11643 resident identity number (checksum computed)."""
    first17 = f"{region}{born}{sequence % 1000:03d}"
    return first17 + check_character(first17)


def subject_of(consortium: Consortium, sequence: int) -> str:
    return pseudonym(identity_number(sequence), consortium.consortium_secret())


@cache
def _extra_identity(
    home: str, name: str, org: str, role: str, region: str, clearance: int, node_ou: str
) -> Identity:
    consortium = Consortium.load(Path(home))
    ca = consortium.certificate_authority(org)
    attributes = officer_attributes(role=role, region=region, clearance=clearance)
    # Issued when the CA was: certificates stay valid for the whole test session.
    cert, key = ca.issue(
        common_name=name,
        node_ou=node_ou,
        attributes=attributes,
        now=ca.certificate.not_valid_before_utc,
    )
    kind = IdentityKind.ADMIN if node_ou == "admin" else IdentityKind.OFFICER
    return Identity(
        name=name,
        kind=IdentityKind.AUDITOR if role == "auditor" else kind,
        org=ca.org,
        msp_id=ca.msp_id,
        certificate=cert,
        private_key=key,
        attributes=attributes,
    )


def extra_officer(
    consortium: Consortium,
    name: str,
    org: str,
    role: str,
    region: str = SHENZHEN,
    clearance: int = 2,
    *,
    node_ou: str = "client",
) -> Identity:
    """An identity the demo roster lacks (e.g. a ``hukou_officer``), issued by the org's CA."""
    return _extra_identity(str(consortium.home), name, org, role, region, clearance, node_ou)


def content_address(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class LedgerHarness:
    """A chaincode host over a StateDB with direct commits (see the module docstring)."""

    def __init__(self, path: Path, consortium: Consortium, now: datetime) -> None:
        self.db = StateDB(path)
        self.consortium = consortium
        self.host = ChaincodeHost(AccessLedgerChaincode(), name=CHAINCODE_NAME)
        self.now = now
        self._peer = consortium.identity("peer0.publicsecurity")

    def close(self) -> None:
        self.db.close()

    def identity(self, name: str) -> Identity:
        return self.consortium.identity(name)

    def proposal(
        self,
        identity: Identity,
        function: str,
        arg: Mapping[str, Any] | str | None = None,
        *,
        at: datetime | None = None,
        is_init: bool = False,
    ) -> Proposal:
        args: list[str] = []
        if arg is not None:
            args.append(arg if isinstance(arg, str) else json.dumps(arg))
        return Proposal.build(
            creator=identity.serialized(),
            channel_id=CHANNEL,
            chaincode_name=CHAINCODE_NAME,
            function=function,
            args=args,
            now=at or self.now,
            is_init=is_init,
        ).sign(identity.signer)

    async def simulate(self, proposal: Proposal, host: ChaincodeHost | None = None) -> Result:
        with self.db.snapshot() as view:
            simulation = await (host or self.host).execute(proposal, view)
        return _result(simulation)

    async def evaluate(
        self, identity: Identity, function: str, arg: Mapping[str, Any] | str | None = None
    ) -> Result:
        return await self.simulate(self.proposal(identity, function, arg))

    async def submit(
        self,
        identity: Identity,
        function: str,
        arg: Mapping[str, Any] | str | None = None,
        *,
        at: datetime | None = None,
        is_init: bool = False,
    ) -> Result:
        """Simulate; if successful, commit the writes in a block and advance the clock."""
        proposal = self.proposal(identity, function, arg, at=at, is_init=is_init)
        result = await self.simulate(proposal)
        if result.ok:
            self.commit(proposal, result, identity)
        return result

    def commit(self, proposal: Proposal, result: Result, identity: Identity) -> None:
        simulation = result.simulation
        response = create_proposal_response(
            proposal,
            response=simulation.response,
            results=simulation.rwset_bytes,
            events=simulation.event_bytes,
            chaincode_name=self.host.name,
            chaincode_version=self.host.version,
            endorser=self._peer.serialized(),
            signer=self._peer.signer,
        )
        envelope = create_signed_transaction(proposal, [response], identity.signer)
        block = new_block(self.db.height, self.db.tip_hash, [envelope.SerializeToString()])
        self.db.commit_block(
            block.SerializeToString(),
            block_header_hash(block.header),
            transactions=[
                TxIndexEntry(
                    tx_num=0,
                    tx_id=simulation.tx_id,
                    validation_code=0,
                    timestamp_seconds=int(self.now.timestamp()),
                )
            ],
            writes=[
                StateWrite(tx_num=0, namespace=self.host.name, key=key, value=value)
                for key, value in result.writes().items()
            ],
        )
        self.now += timedelta(seconds=1)

    # -- conveniences ----------------------------------------------------------------

    async def register(
        self,
        registrar: str,
        record_type: str,
        subject: str,
        *,
        region: str = SHENZHEN,
        tiers: Sequence[str] = ("T0", "T1", "T2"),
        record_id: str | None = None,
        schema_version: int = 1,
        metadata: Mapping[str, Any] | None = None,
    ) -> Result:
        arg: dict[str, Any] = {
            "record_type": record_type,
            "schema_version": schema_version,
            "subject": subject,
            "region": region,
            "tiers": {
                t: {
                    "content_address": content_address(record_id or "", record_type, t),
                    "size": 100,
                }
                for t in tiers
            },
        }
        if record_id is not None:
            arg["record_id"] = record_id
        if metadata is not None:
            arg["metadata"] = dict(metadata)
        return await self.submit(self.identity(registrar), "RegisterRecord", arg)

    def access_request(
        self,
        signer: Identity,
        subject: str,
        *,
        tier: str,
        purpose: str,
        record_types: Sequence[str] | None = None,
        record_ids: Sequence[str] | None = None,
        case_ref: str | None = None,
        emergency: bool = False,
        justification_hash: str | None = None,
        nonce: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """A RequestAccess argument signed by ``signer``."""
        document: dict[str, Any] = {
            "format": ACCESS_REQUEST_FORMAT,
            "subject": subject,
            "tier": tier,
            "purpose": purpose,
            "case_ref": case_ref,
            "emergency": emergency,
            "justification_hash": justification_hash,
            "nonce": nonce or secrets.token_hex(16),
            "timestamp": _iso(timestamp or self.now),
        }
        if record_types is not None:
            document["record_types"] = list(record_types)
        if record_ids is not None:
            document["record_ids"] = list(record_ids)
        return sign_document(document, signer.signer)

    async def request(self, officer: Identity, subject: str, **kwargs: Any) -> Result:
        return await self.submit(
            officer, "RequestAccess", self.access_request(officer, subject, **kwargs)
        )

    def consent(
        self,
        citizen: Identity,
        subject: str,
        *,
        grantee_org: str,
        purpose: str,
        record_types: Sequence[str],
        max_tier: str,
        expires_at: datetime,
    ) -> str:
        document = {
            "format": CONSENT_FORMAT,
            "subject": subject,
            "grantee_org": grantee_org,
            "purpose": purpose,
            "record_types": list(record_types),
            "max_tier": max_tier,
            "expires_at": _iso(expires_at),
            "nonce": secrets.token_hex(16),
            "timestamp": _iso(self.now),
        }
        return sign_document(document, citizen.signer)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _result(simulation: SimulationResult) -> Result:
    response = simulation.response
    payload: Any = None
    code: str | None = None
    if response.status == 200:
        payload = json.loads(bytes(response.payload)) if response.payload else None
    else:
        code, _ = parse_error_message(response.message)
    event = simulation.event
    return Result(
        status=response.status,
        payload=payload,
        code=code,
        message=response.message,
        event_name=event.event_name if event is not None else None,
        event=json.loads(bytes(event.payload)) if event is not None and event.payload else None,
        simulation=simulation,
    )
