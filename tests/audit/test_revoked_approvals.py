"""Replay re-checks governance approvals against the CRLs in force at their height.

The contract cannot see the channel's CRLs, and the gateway's check runs
only on its own request path; a client talking to the peers directly can
get an ``InstallPolicy`` whose majority includes a revoked admin committed.
The auditor must still name it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from audit.findings import FindingKind
from chaincode import CHAINCODE_NAME
from chaincode.codec import dumps
from crypto.consortium import Consortium
from gateway.service.core import GatewayService
from gateway.settings import GatewaySettings
from network.fabric.blocks import last_config_index
from network.fabric.configblock import read_config
from network.fabric.configtx import (
    compute_update,
    config_update_envelope,
    sign_config_update,
    with_revocation_list,
)
from policies.bundle import PolicyBundle
from policies.governance import sign_approval
from tests.audit.conftest import replay
from tests.gateway.test_app_support import ShiftedClock, copy_home

APPROVERS = ("admin.tax", "admin.publicsecurity", "admin.hrss", "admin.housing", "admin.health")


async def test_an_installed_policy_approved_with_a_revoked_admin_is_a_finding(
    demo_home: Path, tmp_path: Path
) -> None:
    home = copy_home(demo_home, tmp_path)
    members = Consortium.load(home)
    service = await GatewayService.start(GatewaySettings(home=home), clock=ShiftedClock())
    try:
        network = service.network
        tax_admin = members.identity("admin.tax")
        now = datetime.now(UTC)
        crl = members.certificate_authority("Tax").revocation_list(
            {tax_admin.certificate.serial_number: now - timedelta(seconds=1)}, now=now
        )
        tip = network.get_block(network.height - 1)
        original = read_config(network.get_block(last_config_index(tip)))
        updated = with_revocation_list(original, "TaxMSP", crl.public_bytes(Encoding.PEM))
        update = compute_update(network.channel_id, original, updated).SerializeToString()
        envelope = config_update_envelope(
            network.channel_id,
            update,
            [sign_config_update(update, tax_admin)],
            creator=tax_admin,
            now=now,
        )
        await network.update_config(envelope)

        # Straight to the network, as a client bypassing this gateway could do.
        current = service.policy.current()
        bundle = PolicyBundle.load_default().with_version(current.version + 1)
        admins = [members.identity(name) for name in APPROVERS]
        approvals = [sign_approval(bundle, a.serialized(), a.signer).to_dict() for a in admins]
        argument = dumps({"bundle": bundle.to_dict(), "approvals": approvals}).decode("utf-8")
        committed = await network.submit(
            members.identity("admin.publicsecurity"), CHAINCODE_NAME, "InstallPolicy", [argument]
        )
        assert committed.validation_code_name == "VALID"  # the contract cannot see the CRL
        export = tmp_path / "ledger.bin"
        network.export(export)
    finally:
        await service.aclose()

    report = replay(export).report
    located = [(f.kind, f.tx_id) for f in report.findings]
    assert located == [(FindingKind.POLICY_BUNDLE, committed.tx_id)]
    assert "unrevoked department admin" in report.findings[0].message
    assert json.dumps(report.to_dict())  # the report stays serialisable
