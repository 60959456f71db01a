"""The execute-order-validate pipeline of the embedded network, end to end.

Real consortium homes, real signatures, real SQLite: every test submits
through the endorser, orderer and committer and checks what the ledger holds
afterwards. The helpers at the top are shared by the other ``test_pipeline_*``
modules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto.consortium import Consortium, create_demo_consortium
from crypto.identity import Identity
from network.engine.errors import CommitError, EndorseError, EvaluateError, SubmitError
from network.engine.network import EmbeddedNetwork, TxStatus, ledger_path
from network.engine.proposal import Proposal, create_transaction
from network.engine.statedb import LedgerCorruptionError
from network.fabric.transactions import decode_identity, parse_envelope
from network.fabric.validator import code_name
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode

CC = "accessledger"


# --- helpers shared by the test_pipeline_* modules ------------------------------------------


def make_home(
    root: Path,
    *,
    max_message_count: int = 10,
    batch_timeout_ms: int = 20,
    preferred_max_bytes: int | None = None,
    absolute_max_bytes: int | None = None,
    endorsement_policy: str | None = None,
) -> Path:
    """A fresh demo consortium whose batch settings suit tests (small, fast blocks)."""
    home = root / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    path = home / "network.yaml"
    topology = yaml.safe_load(path.read_text())
    batch = topology["orderer"]["batch"]
    batch["max_message_count"] = max_message_count
    batch["batch_timeout_ms"] = batch_timeout_ms
    if preferred_max_bytes is not None:
        batch["preferred_max_bytes"] = preferred_max_bytes
    if absolute_max_bytes is not None:
        batch["absolute_max_bytes"] = absolute_max_bytes
    if endorsement_policy is not None:
        topology["endorsement_policy"] = endorsement_policy
    path.write_text(yaml.safe_dump(topology, sort_keys=False))
    return home


def open_network(home: Path, **kwargs: Any) -> EmbeddedNetwork:
    """The home's network running the asset-transfer sample as the ``accessledger`` chaincode."""
    return EmbeddedNetwork.open(home, chaincodes={CC: AssetTransferChaincode}, **kwargs)


def create_args(asset_id: str, owner: str = "tom", value: int = 100) -> list[str]:
    return [asset_id, "blue", "5", owner, str(value)]


def endorser_msps(block: Any, index: int) -> list[str]:
    """The MSP IDs of the endorsements on transaction ``index`` of ``block``."""
    tx = parse_envelope(bytes(block.data.data[index]))
    assert tx.action is not None
    return [decode_identity(e.endorser)[0] for e in tx.action.endorsements]


def block_codes(block: Any) -> list[str]:
    return [code_name(c) for c in block.metadata.metadata[2]]


async def read_asset(network: EmbeddedNetwork, who: Identity, asset_id: str) -> dict[str, Any]:
    data = await network.evaluate(who, CC, "ReadAsset", [asset_id])
    value: dict[str, Any] = json.loads(data)
    return value


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path)


@pytest.fixture
async def network(home: Path) -> AsyncIterator[EmbeddedNetwork]:
    net = open_network(home)
    yield net
    await net.aclose()


@pytest.fixture
def members(home: Path) -> Consortium:
    return Consortium.load(home)


@pytest.fixture
def officer(members: Consortium) -> Identity:
    return members.identity("officer.education.sz1")


@pytest.fixture
def other_officer(members: Consortium) -> Identity:
    return members.identity("officer.hrss.sz1")


# --- the happy path ----------------------------------------------------------------------------


async def test_first_open_writes_the_genesis_config_block(home: Path) -> None:
    network = open_network(home)
    try:
        assert network.height == 1
        genesis = network.get_block(0)
        tx = parse_envelope(bytes(genesis.data.data[0]))
        assert tx.header_type_name == "CONFIG"
        assert tx.channel_id == network.channel_id == "accessledger"
        assert network.transaction_status(tx.tx_id) == TxStatus(tx.tx_id, 0, 0)
        genesis_hash = network.tip_hash
    finally:
        network.close()
    reopened = open_network(home)
    try:
        assert reopened.height == 1
        assert reopened.tip_hash == genesis_hash
    finally:
        reopened.close()
    assert ledger_path(home, "accessledger").is_file()


async def test_submit_commits_endorsed_by_own_org_and_audit(
    network: EmbeddedNetwork, officer: Identity
) -> None:
    result = await network.submit(officer, CC, "CreateAsset", create_args("a1"))

    assert result.validation_code_name == "VALID"
    assert json.loads(result.payload)["ID"] == "a1"
    assert network.height == result.block_number + 1
    block = network.get_block(result.block_number)
    tx = parse_envelope(bytes(block.data.data[0]))
    assert tx.tx_id == result.tx_id
    assert tx.creator == officer.serialized()
    assert sorted(endorser_msps(block, 0)) == ["AuditMSP", "EducationMSP"]
    assert block_codes(block) == ["VALID"]
    assert network.transaction_status(result.tx_id) == TxStatus(
        result.tx_id, 0, result.block_number
    )
    assert (await read_asset(network, officer, "a1"))["Owner"] == "tom"


async def test_auditor_is_endorsed_by_audit_and_the_first_department(
    network: EmbeddedNetwork, members: Consortium
) -> None:
    auditor = next(i for i in members.identities() if i.role == "auditor")
    assert auditor.org == "Audit"
    result = await network.submit(auditor, CC, "CreateAsset", create_args("a2"))
    block = network.get_block(result.block_number)
    assert endorser_msps(block, 0) == ["AuditMSP", "PublicSecurityMSP"]


# --- MVCC ---------------------------------------------------------------------------------------


async def test_concurrent_updates_of_one_key_one_valid_one_conflict(
    network: EmbeddedNetwork, officer: Identity, other_officer: Identity
) -> None:
    await network.submit(officer, CC, "CreateAsset", create_args("k"))
    height = network.height

    results = await asyncio.gather(
        network.submit(officer, CC, "TransferAsset", ["k", "alice"]),
        network.submit(other_officer, CC, "TransferAsset", ["k", "bob"]),
        return_exceptions=True,
    )

    valid = [r for r in results if not isinstance(r, BaseException)]
    invalid = [r for r in results if isinstance(r, BaseException)]
    assert len(valid) == 1
    assert len(invalid) == 1
    error = invalid[0]
    assert isinstance(error, CommitError)
    assert error.validation_code_name == "MVCC_READ_CONFLICT"
    assert error.validation_code == 11
    winner = "alice" if results[0] is valid[0] else "bob"
    assert (await read_asset(network, officer, "k"))["Owner"] == winner
    # Both were ordered: the conflicting transaction stays in its block, changing nothing.
    assert network.transaction_status(error.tx_id) == TxStatus(error.tx_id, 11, error.block_number)
    assert error.block_number >= height
    history = json.loads(await network.evaluate(officer, CC, "GetAssetHistory", ["k"]))
    assert len(history) == 2
    assert history[0]["txId"] == valid[0].tx_id


async def test_stale_read_against_committed_state_is_a_conflict(
    network: EmbeddedNetwork, officer: Identity, other_officer: Identity
) -> None:
    await network.submit(officer, CC, "CreateAsset", create_args("k"))
    first = network.gateway(officer)
    second = network.gateway(other_officer)
    # Both simulate against the same committed version of "k"...
    a = await first.endorse(first.new_proposal(CC, "TransferAsset", ["k", "alice"]))
    b = await second.endorse(second.new_proposal(CC, "TransferAsset", ["k", "bob"]))
    # ...the first commits in its own block, the second is validated afterwards.
    status_a = await (await first.submit_transaction(first.sign_transaction(a))).status()
    status_b = await (await second.submit_transaction(second.sign_transaction(b))).status()

    assert status_a.validation_code_name == "VALID"
    assert status_b.validation_code_name == "MVCC_READ_CONFLICT"
    assert status_b.block_number > status_a.block_number
    assert (await read_asset(network, officer, "k"))["Owner"] == "alice"


# --- endorsement policy ------------------------------------------------------------------------


async def test_missing_endorsement_fails_policy_and_changes_nothing(
    network: EmbeddedNetwork, officer: Identity
) -> None:
    with pytest.raises(CommitError) as caught:
        await network.submit(
            officer, CC, "CreateAsset", create_args("m"), endorsing_orgs=["Education"]
        )
    assert caught.value.validation_code_name == "ENDORSEMENT_POLICY_FAILURE"
    assert caught.value.tx_id
    block = network.get_block(caught.value.block_number)
    assert endorser_msps(block, 0) == ["EducationMSP"]
    assert block_codes(block) == ["ENDORSEMENT_POLICY_FAILURE"]
    with pytest.raises(EvaluateError):
        await read_asset(network, officer, "m")
    assert network.store.get_history(CC, "m") == []


@pytest.mark.parametrize("forgery", ["rogue_ca", "wrong_key"])
async def test_forged_endorsement_fails_policy_and_changes_nothing(
    network: EmbeddedNetwork, officer: Identity, members: Consortium, forgery: str
) -> None:
    from tests.network.engine.samples.harness import make_identity

    gateway = network.gateway(officer)
    proposal = gateway.new_proposal(CC, "CreateAsset", create_args("f"))
    genuine = await gateway.endorse(proposal, endorsing_orgs=["Education"])
    response = genuine.responses[0]
    real_audit_peer = members.identity("peer0.audit")
    if forgery == "rogue_ca":
        # A peer certificate claiming AuditMSP but issued by a CA outside the channel.
        forger = make_identity("peer0.audit", "AuditMSP", "peer")
        endorser = forger.serialized()
    else:
        # The real Audit peer's certificate, signed with a key that is not its own.
        forger = make_identity("intruder", "AuditMSP", "peer")
        endorser = real_audit_peer.serialized()
    forged = type(response)()
    forged.CopyFrom(response)
    forged.endorsement.endorser = endorser
    forged.endorsement.signature = forger.sign(bytes(response.payload) + endorser)
    transaction = create_transaction(proposal, [response, forged]).sign(officer.signer)

    status = await (await gateway.submit_transaction(transaction)).status()

    assert status.validation_code_name == "ENDORSEMENT_POLICY_FAILURE"
    block = network.get_block(status.block_number)
    assert sorted(endorser_msps(block, 0)) == ["AuditMSP", "EducationMSP"]
    assert network.store.get_state(CC, "f") is None
    assert network.store.get_history(CC, "f") == []


# --- creator signatures -------------------------------------------------------------------------


async def test_bad_proposal_signature_is_refused_at_endorsement(
    network: EmbeddedNetwork, officer: Identity, other_officer: Identity
) -> None:
    gateway = network.gateway(officer)
    signed = gateway.new_proposal(CC, "CreateAsset", create_args("s"))
    unsigned = Proposal.from_bytes(signed.proposal_bytes)
    assert unsigned.signature is None
    for signature in (other_officer.sign(unsigned.proposal_bytes), b"\x30\x02\x02\x00"):
        with pytest.raises(EndorseError) as caught:
            await gateway.endorse(unsigned.with_signature(signature))
        assert caught.value.tx_id == unsigned.tx_id
        assert "signature" in caught.value.message
    with pytest.raises(EndorseError, match="not signed"):
        await gateway.endorse(unsigned)
    tampered = Proposal.from_bytes(
        signed.proposal_bytes.replace(b"CreateAsset", b"DeleteAsset"), signed.signature
    )
    with pytest.raises(EndorseError, match="signature"):
        await gateway.endorse(tampered)
    assert network.height == 1


async def test_bad_creator_signature_is_refused_by_the_orderer_and_invalid_in_a_block(
    network: EmbeddedNetwork, officer: Identity, other_officer: Identity
) -> None:
    gateway = network.gateway(officer)
    endorsement = await gateway.endorse(gateway.new_proposal(CC, "CreateAsset", create_args("x")))
    forged = endorsement.transaction().sign(other_officer.signer)  # not the creator's key

    with pytest.raises(SubmitError) as caught:
        await gateway.submit_transaction(forged)
    assert caught.value.tx_id == endorsement.tx_id
    assert "signature" in caught.value.message
    assert network.height == 1

    # A faulty orderer that skips the check: the committing peer still catches it.
    waiter = network.commit_waiter(forged.tx_id, check_ledger=False)
    network.orderer.order(forged.envelope_bytes())
    status = await waiter
    assert status.validation_code_name == "BAD_CREATOR_SIGNATURE"
    assert network.store.get_state(CC, "x") is None
    assert network.store.get_history(CC, "x") == []


# --- duplicates ----------------------------------------------------------------------------------


async def test_duplicate_transaction_ids(network: EmbeddedNetwork, officer: Identity) -> None:
    gateway = network.gateway(officer)
    proposal = gateway.new_proposal(CC, "CreateAsset", create_args("d"))
    endorsement = await gateway.endorse(proposal)
    envelope = gateway.sign_transaction(endorsement).envelope_bytes()

    # Twice in one block: the second copy is DUPLICATE_TXID.
    waiter = network.commit_waiter(proposal.tx_id, check_ledger=False)
    await network.broadcast(envelope)
    await network.broadcast(envelope)
    status = await waiter
    block = network.get_block(status.block_number)
    assert status.validation_code_name == "VALID"
    assert block_codes(block) == ["VALID", "DUPLICATE_TXID"]

    # Again in a later block: checked against the ledger's tx index.
    replay = network.commit_waiter(proposal.tx_id, check_ledger=False)
    await network.broadcast(envelope)
    again = await replay
    assert again.block_number > status.block_number
    assert again.validation_code_name == "DUPLICATE_TXID"
    assert len(network.store.get_history(CC, "d")) == 1
    # The ledger reports the first occurrence, and the endorser refuses the id.
    assert network.transaction_status(proposal.tx_id) == status
    with pytest.raises(EndorseError, match="duplicate"):
        await gateway.endorse(proposal)


# --- refusals before ordering -------------------------------------------------------------------


async def test_chaincode_error_is_an_endorse_error_and_nothing_is_ordered(
    network: EmbeddedNetwork, officer: Identity
) -> None:
    with pytest.raises(EndorseError) as caught:
        await network.submit(officer, CC, "TransferAsset", ["nope", "bob"])
    assert caught.value.status == 500
    assert "does not exist" in caught.value.message
    assert caught.value.tx_id
    await asyncio.sleep(0.05)
    assert network.height == 1


async def test_unknown_chaincode_and_non_writer_are_refused(
    network: EmbeddedNetwork, officer: Identity, members: Consortium
) -> None:
    with pytest.raises(EndorseError, match="not installed"):
        await network.submit(officer, "othercc", "CreateAsset", create_args("u"))
    peer = members.identity("peer0.education")
    with pytest.raises(EndorseError, match="Writers"):
        await network.submit(peer, CC, "CreateAsset", create_args("u"))


async def test_expired_creator_certificate_is_refused(home: Path, officer: Identity) -> None:
    late = officer.certificate.not_valid_after_utc + timedelta(days=1)
    network = open_network(home, clock=lambda: late)
    try:
        with pytest.raises(EndorseError, match="not valid at"):
            await network.submit(officer, CC, "CreateAsset", create_args("e"))
    finally:
        await network.aclose()


# --- opening -------------------------------------------------------------------------------


async def test_altered_block_on_disk_is_detected_on_open(home: Path, officer: Identity) -> None:
    import sqlite3

    network = open_network(home)
    result = await network.submit(officer, CC, "CreateAsset", create_args("t"))
    await network.aclose()
    path = ledger_path(home, "accessledger")
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute(
            "SELECT bytes FROM blocks WHERE number = ?", (result.block_number,)
        ).fetchone()
        tampered = bytes(data).replace(b'"Owner":"tom"', b'"Owner":"eve"')
        assert tampered != bytes(data)
        conn.execute(
            "UPDATE blocks SET bytes = ? WHERE number = ?", (tampered, result.block_number)
        )
    with pytest.raises(LedgerCorruptionError, match=f"block {result.block_number}"):
        open_network(home)


# --- endorser selection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "creator", "expected"),
    [
        # The smallest satisfying set, the creator's org first, then Audit, then topology order.
        ("OR('EducationMSP.peer', 'AuditMSP.peer')", "officer.education.sz1", ["EducationMSP"]),
        ("OR('EducationMSP.peer', 'AuditMSP.peer')", "officer.tax.sz1", ["AuditMSP"]),
        (
            "AND('TaxMSP.peer', 'HealthMSP.peer', 'HousingMSP.peer')",
            "officer.education.sz1",
            ["HousingMSP", "HealthMSP", "TaxMSP"],
        ),
        (
            "OutOf(2, 'HRSSMSP.peer', 'HousingMSP.peer', 'TaxMSP.peer')",
            "officer.tax.sz1",
            ["TaxMSP", "HRSSMSP"],
        ),
        (
            "MAJORITY Endorsement",
            "officer.health.sz1",
            ["HealthMSP", "AuditMSP", "PublicSecurityMSP", "HRSSMSP", "HousingMSP"],
        ),
    ],
)
async def test_endorsers_are_the_smallest_preferred_set(
    tmp_path: Path, policy: str, creator: str, expected: list[str]
) -> None:
    home = make_home(tmp_path, endorsement_policy=policy)
    identity = Consortium.load(home).identity(creator)
    async with open_network(home) as network:
        result = await network.submit(identity, CC, "CreateAsset", create_args("p"))
        assert endorser_msps(network.get_block(result.block_number), 0) == expected


@pytest.mark.parametrize("form", ["class", "instance", "factory", "host"])
async def test_chaincodes_may_be_given_in_several_forms(
    home: Path, officer: Identity, form: str
) -> None:
    from network.engine.chaincode_host import ChaincodeHost

    chaincode: object = {
        "class": AssetTransferChaincode,
        "instance": AssetTransferChaincode(),
        "factory": lambda: AssetTransferChaincode(),
        "host": ChaincodeHost(AssetTransferChaincode(), name=CC, version="2.0"),
    }[form]
    async with EmbeddedNetwork.open(home, chaincodes={CC: chaincode}) as network:
        result = await network.submit(officer, CC, "CreateAsset", create_args("v"))
        tx = parse_envelope(bytes(network.get_block(result.block_number).data.data[0]))
    assert tx.action is not None
    assert tx.action.chaincode_version == ("2.0" if form == "host" else "1.0")
