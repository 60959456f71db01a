"""An endorsement forged with a key the channel's MSPs never issued.

The attacker is the submitting officer colluding with the orderer: they can
re-sign the envelope and every block, but they do not hold a second
department's peer key, so they mint their own "HealthMSP" peer certificate.
"""

from __future__ import annotations

from audit.findings import FindingKind
from crypto.ca import CertificateAuthority
from crypto.identity import Identity, IdentityKind
from tests.audit.conftest import replay
from tests.audit.forge import find_tx, load_blocks, reseal, rewrite_transaction, save_blocks
from tests.audit.scenario import Scenario


def _rogue_peer(scenario: Scenario) -> Identity:
    genuine = scenario.consortium.identity("peer0.health")
    start = genuine.certificate.not_valid_before_utc
    ca = CertificateAuthority.create(
        org="Health", msp_id="HealthMSP", domain="health.gov.example", now=start
    )
    cert, key = ca.issue(common_name="peer0.health", node_ou="peer", now=start)
    return Identity(
        name="peer0.health",
        kind=IdentityKind.PEER,
        org="Health",
        msp_id="HealthMSP",
        certificate=cert,
        private_key=key,
        attributes={},
    )


def _forge(scenario: Scenario, endorsers: list[Identity]) -> int:
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["granted"])
    rewrite_transaction(
        ledger[number],
        index,
        creator=consortium.identity("officer.education.sz1"),
        endorsers=endorsers,
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    save_blocks(scenario.export, ledger)
    return number


def test_endorsement_forged_by_a_non_member_key(scenario: Scenario) -> None:
    genuine = scenario.consortium.identity("peer0.education")
    number = _forge(scenario, [genuine, _rogue_peer(scenario)])
    report = replay(scenario.export).report
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_index, first.tx_id) == (
        FindingKind.VALIDATION_CODE,
        number,
        0,
        scenario.tx["granted"],
    )
    assert "recorded VALID, replay gives ENDORSEMENT_POLICY_FAILURE" in first.message
    assert "endorsement 1 is not a valid member signature" in first.message


def test_extra_forged_endorsement_on_a_valid_transaction_is_reported(scenario: Scenario) -> None:
    """Two genuine endorsements still satisfy OutOf(2); the forged third is named anyway."""
    consortium = scenario.consortium
    peers = [consortium.identity("peer0.education"), consortium.identity("peer0.audit")]
    number = _forge(scenario, [*peers, _rogue_peer(scenario)])
    report = replay(scenario.export).report
    assert [(f.kind, f.block, f.tx_index) for f in report.findings] == [
        (FindingKind.ENDORSEMENT, number, 0)
    ]
    assert "endorsement 2" in report.findings[0].message
    assert "HealthMSP" in report.findings[0].message


def test_forged_endorsement_not_hidden_by_parallel_workers(scenario: Scenario) -> None:
    """Worker processes verify the forged signature fine (it is a valid ECDSA signature);
    membership is still judged in the replay."""
    number = _forge(
        scenario, [scenario.consortium.identity("peer0.education"), _rogue_peer(scenario)]
    )
    report = replay(scenario.export, workers=2, chunk_bytes=4096).report
    assert report.stats.signatures_verified_ahead > 0
    assert (report.findings[0].kind, report.findings[0].block) == (
        FindingKind.VALIDATION_CODE,
        number,
    )
