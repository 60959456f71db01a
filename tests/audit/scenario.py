"""An AccessLedger ledger written by the embedded engine, for replay and tamper tests.

:func:`build_scenario` creates a fresh demo home, opens the embedded network
with the AccessLedger chaincode and runs a realistic history through the
whole execute-order-validate pipeline: InitLedger, policy v1 approved by five
department admins, records (real XChaCha20 ciphertexts in the owners' off-chain
stores), a citizen binding, a denial followed by a grant, a break-glass access
and its review, a contest, policy v2, and a request decided under v2. It also
writes the key-release log a gateway would have written for the grants.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chaincode import AccessLedgerChaincode, LedgerConfig
from chaincode.signed import ACCESS_REQUEST_FORMAT, sign_document
from crypto.consortium import Consortium, create_demo_consortium
from crypto.envelope import AssociatedData, content_address, encrypt_tier, generate_tier_key
from crypto.pseudonym import check_character, pseudonym
from gateway.store import DepartmentStore, default_store_path
from network.engine.network import EmbeddedNetwork
from policies.bundle import PolicyBundle
from policies.governance import sign_approval

CHAINCODE = "accessledger"
ADMINS = (
    "admin.publicsecurity",
    "admin.hrss",
    "admin.housing",
    "admin.education",
    "admin.health",
    "admin.tax",
    "admin.civilaffairs",
    "admin.audit",
)
RECORDS = (
    # registrar, record type, record id, subject sequence, tiers
    ("registrar.publicsecurity.sz1", "residence_permit", "rp-1", 21, ("T0", "T1", "T2")),
    ("registrar.housing.sz1", "housing_rental", "hr-1", 21, ("T0", "T1", "T2")),
    ("registrar.hrss.sz1", "social_insurance", "si-1", 21, ("T0", "T1", "T2")),
    ("registrar.health.sz1", "health_record", "he-1", 21, ("T0", "T1", "T2", "T3")),
    ("registrar.publicsecurity.sz1", "residence_permit", "rp-2", 34, ("T0", "T1")),
)


class Clock:
    """The network's clock: moved forward explicitly between transactions."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Scenario:
    home: Path
    export: Path
    stores: Path
    key_releases: Path
    subject: str
    other_subject: str
    tx: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)

    @property
    def blocks_by_tx(self) -> dict[str, int]:
        return {self.tx[label]: number for label, number in self.blocks.items()}

    @property
    def release_logs(self) -> list[Path]:
        """Every custodian's key-release log (``HOME/custodians/<Org>/releases.jsonl``)."""
        return sorted((self.home / "custodians").glob("*/releases.jsonl"))

    @property
    def consortium(self) -> Consortium:
        return Consortium.load(self.home)


def identity_number(sequence: int, region: str = "440300") -> str:
    first17 = f"{region}19900101{sequence % 1000:03d}"
    return first17 + check_character(first17)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ledger_config(consortium: Consortium) -> str:
    departments = {
        org.name: (org.msp_id, consortium.org_ca_certs(org.name))
        for org in consortium.orgs()
        if org.name != "Orderer"
    }
    return LedgerConfig.build(departments).to_json()


def install_argument(bundle: PolicyBundle, consortium: Consortium, admins: tuple[str, ...]) -> str:
    approvals = [
        sign_approval(bundle, consortium.identity(a).serialized(), consortium.identity(a).signer)
        for a in admins
    ]
    return json.dumps({"bundle": bundle.to_dict(), "approvals": [a.to_dict() for a in approvals]})


class _Driver:
    def __init__(self, network: EmbeddedNetwork, consortium: Consortium, clock: Clock) -> None:
        self.network = network
        self.consortium = consortium
        self.clock = clock
        self.scenario: Scenario | None = None

    async def submit(self, name: str, function: str, arg: Any, label: str | None = None) -> Any:
        identity = self.consortium.identity(name)
        text = arg if isinstance(arg, str) else json.dumps(arg)
        result = await self.network.gateway(identity).submit(CHAINCODE, function, [text])
        self.clock.tick()
        if label and self.scenario is not None:
            self.scenario.tx[label] = result.tx_id
            self.scenario.blocks[label] = result.block_number
        payload = json.loads(result.payload) if result.payload else None
        return payload

    async def request(self, officer: str, label: str, subject: str, **fields: Any) -> Any:
        document = {
            "format": ACCESS_REQUEST_FORMAT,
            "subject": subject,
            "case_ref": None,
            "emergency": False,
            "justification_hash": None,
            "nonce": secrets.token_hex(16),
            "timestamp": iso(self.clock.now),
            **fields,
        }
        signed = sign_document(document, self.consortium.identity(officer).signer)
        return await self.submit(officer, "RequestAccess", signed, label)


def _store_records(home: Path, consortium: Consortium) -> list[dict[str, Any]]:
    """Encrypt each record's tiers into its owner's store; return RegisterRecord arguments."""
    stores: dict[str, DepartmentStore] = {}
    arguments = []
    try:
        for registrar, record_type, record_id, sequence, tiers in RECORDS:
            org = consortium.identity(registrar).org
            if org not in stores:
                path = default_store_path(home, org)
                path.parent.mkdir(parents=True, exist_ok=True)
                stores[org] = DepartmentStore.open(org, f"sqlite:///{path}")
            entries = {}
            for tier in tiers:
                plaintext = json.dumps({"tier": tier, "record": record_id}).encode()
                ad = AssociatedData(record_id, 1, record_type, tier)
                ciphertext = encrypt_tier(generate_tier_key(), plaintext, ad)
                stores[org].put_blob(ciphertext)
                entries[tier] = {
                    "content_address": content_address(ciphertext),
                    "size": len(ciphertext),
                }
            subject = pseudonym(identity_number(sequence), consortium.consortium_secret())
            arguments.append(
                {
                    "registrar": registrar,
                    "record_id": record_id,
                    "record_type": record_type,
                    "schema_version": 1,
                    "subject": subject,
                    "region": "440300",
                    "tiers": entries,
                }
            )
    finally:
        for store in stores.values():
            store.close()
    return arguments


def _releases(
    scenario: Scenario,
    consortium: Consortium,
    event: dict[str, Any],
    addresses: dict[str, dict[str, Any]],
    released_at: datetime,
) -> dict[str, list[str]]:
    """The lines each custodian's release log gets for a grant (docs/api.md format)."""
    officer = event["officer"]
    recipient = consortium.encryption_public_key(officer["name"])
    decided_at = datetime.strptime(event["decided_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    lines: dict[str, list[str]] = {}
    for granted in event["granted"]:
        for tier in granted["tiers"]:
            line = {
                "format": "accessledger-key-release/1",
                "released_at": iso(released_at),
                "org": granted["owner_org"],
                "tx_id": event["tx_id"],
                "block_number": scenario.blocks_by_tx[event["tx_id"]],
                "record_id": granted["record_id"],
                "version": granted["version"],
                "tier": tier,
                "content_address": addresses[granted["record_id"]][tier]["content_address"],
                "officer_msp_id": officer["msp_id"],
                "officer_fingerprint": officer["cert_fingerprint"],
                "recipient_key_sha256": hashlib.sha256(recipient).hexdigest(),
                "expires_at": iso(decided_at + timedelta(minutes=15)),
            }
            lines.setdefault(granted["owner_org"], []).append(json.dumps(line, sort_keys=True))
    return lines


async def build_scenario(root: Path, *, now: datetime) -> Scenario:
    """Write the scenario's ledger, stores and key-release log under ``root``."""
    home = root / "home"
    create_demo_consortium(home, now=now)
    consortium = Consortium.load(home)
    clock = Clock(now + timedelta(hours=1))
    subject = pseudonym(identity_number(21), consortium.consortium_secret())
    other = pseudonym(identity_number(34), consortium.consortium_secret())
    scenario = Scenario(
        home, root / "ledger.bin", home / "stores",
        home / "custodians" / "PublicSecurity" / "releases.jsonl", subject, other,
    )  # fmt: skip
    records = _store_records(home, consortium)
    network = EmbeddedNetwork.open(home, chaincodes={CHAINCODE: AccessLedgerChaincode}, clock=clock)
    driver = _Driver(network, consortium, clock)
    driver.scenario = scenario
    releases: dict[str, list[str]] = {}
    addresses = {arg["record_id"]: arg["tiers"] for arg in records}
    try:
        await driver.submit("admin.publicsecurity", "InitLedger", ledger_config(consortium), "init")
        await driver.submit(
            "admin.publicsecurity", "InstallPolicy",
            install_argument(PolicyBundle.load_default(1), consortium, ADMINS[:5]), "policy_v1",
        )  # fmt: skip
        for arg in records:
            registrar = arg.pop("registrar")
            await driver.submit(registrar, "RegisterRecord", arg, f"record_{arg['record_id']}")
        await driver.submit(
            "registrar.civilaffairs.sz1", "RegisterCitizen",
            {"certificate": consortium.identity("citizen.c1").cert_pem().decode(),
             "subject": subject},
            "citizen",
        )  # fmt: skip
        for officer in ("officer.education.sz1", "officer.health.sz1"):
            public = consortium.encryption_public_key(officer)
            await driver.submit(
                officer, "RegisterEncryptionKey",
                {"public_key": base64.b64encode(public).decode()}, f"key_{officer}",
            )  # fmt: skip
        await driver.request(
            "officer.education.sz1", "denied", subject, tier="T2",
            purpose="criminal_investigation", record_types=["residence_permit"],
        )  # fmt: skip
        granted = await driver.request(
            "officer.education.sz1", "granted", subject, tier="T1", purpose="school_enrolment",
            record_types=["residence_permit", "housing_rental", "social_insurance"],
        )  # fmt: skip
        for org, lines in _releases(scenario, consortium, granted, addresses, clock.tick()).items():
            releases.setdefault(org, []).extend(lines)
        glass = await driver.request(
            "officer.health.sz1", "break_glass", subject, tier="T2", purpose="emergency_care",
            record_types=["health_record"], emergency=True,
            justification_hash=hashlib.sha256(b"unconscious patient").hexdigest(),
        )  # fmt: skip
        for org, lines in _releases(scenario, consortium, glass, addresses, clock.tick()).items():
            releases.setdefault(org, []).extend(lines)
        await driver.submit(
            "auditor.audit.sz1", "ReviewAccess",
            {"event_id": glass["event_id"], "outcome": "justified", "note_hash": "ab" * 32},
            "review",
        )  # fmt: skip
        await driver.submit(
            "citizen.c1", "ContestAccess",
            {"event_id": granted["event_id"], "reason_hash": "cd" * 32}, "contest",
        )  # fmt: skip
        await driver.submit(
            "admin.health", "InstallPolicy",
            install_argument(PolicyBundle.load_default(2), consortium, ADMINS[3:]), "policy_v2",
        )  # fmt: skip
        await driver.request(
            "officer.education.sz1", "under_v2", subject, tier="T1", purpose="school_enrolment",
            record_types=["social_insurance"],
        )  # fmt: skip
        await driver.request(
            "officer.education.sz1", "other_subject", other, tier="T1",
            purpose="school_enrolment", record_ids=["rp-2", "no-such-record"],
        )  # fmt: skip
        network.export(scenario.export)
    finally:
        await network.aclose()
    for org, lines in releases.items():
        path = home / "custodians" / org / "releases.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return scenario
