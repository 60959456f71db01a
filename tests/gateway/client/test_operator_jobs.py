"""The operator's jobs (DESIGN.md section 2) over real HTTP on 127.0.0.1.

Onboard a department (channel config update + ``AddDepartment``), change
policy through governance (``InstallPolicy``), and revoke a certificate (a
CRL in the channel config). Each is checked by what it changes for the
people using the network: the new department's officer transacts, is denied
under the old policy and granted under the new one; the revoked officer is
refused. Every step is a signed transaction on the ledger, so the chain the
auditor downloads still verifies afterwards.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import Consortium, identity_dir
from crypto.identity import IdentityKind
from gateway.client import Client, ClientError
from gateway.client import governance as gov
from gateway.client.operator import install_policy, renew_certificate, revoke_certificate
from gateway.custodian import release_log_path
from network.fabric.blocks import verify_chain
from network.fabric.configblock import read_config
from network.fabric.configtx import (
    compute_update,
    config_update_envelope,
    sign_config_update,
    with_revocation_list,
)
from tests.gateway.client.people import new_person, record, up_to

TRANSPORT_POLICY = """// Transport caseworkers check residence (T1) for local licences.
@id("transport.residence_check")
permit (principal, action == Action::"read", resource is Record)
when {
  principal.org == "Transport" &&
  principal.role == "caseworker" &&
  context.purpose == "service_delivery" &&
  resource.record_type == "residence_permit" &&
  resource.tier <= 1 &&
  resource.region == principal.region
};
"""


@pytest.fixture(scope="module")
def clients(home: Path, gateway_url: str) -> Iterator[dict[str, Client]]:
    opened: dict[str, Client] = {}
    yield opened
    for client in opened.values():
        client.close()


def _client(opened: dict[str, Client], home: Path, url: str, name: str) -> Client:
    if name not in opened:
        opened[name] = Client.from_home(home, name, gateway_url=url)
    return opened[name]


@pytest.fixture(scope="module")
def onboarded(home: Path, gateway_url: str) -> dict[str, object]:
    """Onboard ``Transport`` with the CLI against the live gateway; its JSON report."""
    result = CliRunner().invoke(
        app,
        [
            "department",
            "add",
            "--home",
            str(home),
            "--org",
            "Transport",
            "--region",
            "440300",
            "--officer-role",
            "caseworker",
            "--gateway",
            gateway_url,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _transport_officer(home: Path) -> str:
    consortium = Consortium.load(home)
    [officer] = [
        i for i in consortium.identities(org="Transport") if i.kind == IdentityKind.OFFICER
    ]
    return officer.name


def test_onboarded_department_is_a_channel_member_and_its_officer_transacts(
    home: Path, gateway_url: str, clients: dict[str, Client], onboarded: dict[str, object]
) -> None:
    assert onboarded["org"] == "Transport"
    update = onboarded["config_update"]
    assert isinstance(update, dict)
    assert update["sequence"] >= 1
    assert len(onboarded["approved_by"]) >= 5  # type: ignore[arg-type]  # 5 of 8 departments

    auditor = _client(clients, home, gateway_url, "auditor.audit.sz1")
    snapshot = auditor.run(gov.config_block(auditor.operations))
    assert "TransportMSP" in snapshot.msp_ids
    assert snapshot.block_number == update["block_number"]
    config = read_config(snapshot.block)
    assert "Transport" in config.channel_group.groups["Application"].groups

    # The new officer registered its X25519 key in its own transaction during onboarding.
    officer = _transport_officer(home)
    assert officer in onboarded["keys_registered"]  # type: ignore[operator]

    person = new_person()
    permit = record("residence_permit", person)
    registrar = _client(clients, home, gateway_url, "registrar.publicsecurity.sz1")
    receipt = registrar.put_record("residence_permit", person, permit)

    transport = _client(clients, home, gateway_url, officer)
    denied = transport.request_access(receipt.subject, ["residence_permit"], "T1")
    assert denied.decision == "denied"  # default deny: no policy names Transport yet
    assert not denied.granted

    # Change policy through governance: version + 1, approved by a majority of admins.
    before = auditor.ledger_info().policy_version
    anchored = auditor.run(gov.anchored_policy(auditor.operations))
    bundle = anchored.bundle
    from policies.bundle import PolicyBundle

    extended = PolicyBundle(
        version=anchored.version + 1,
        cedar_schema=bundle.cedar_schema,
        policies={**bundle.policies, "transport.cedar": TRANSPORT_POLICY},
        catalogue=bundle.catalogue,
    )
    installed = install_policy(home, bundle=extended, gateway_url=gateway_url)
    assert installed["version"] == anchored.version + 1
    assert auditor.ledger_info().policy_version == (before or 0) + 1

    granted = transport.request_access(receipt.subject, ["residence_permit"], "T1")
    assert granted.decision == "granted"
    [grant] = granted.granted
    assert grant.fields == up_to("residence_permit", permit, "T1")
    assert granted.policy_version == (before or 0) + 1

    # The chain an auditor downloads still verifies, config blocks included.
    verify_chain(auditor.blocks(0))


def test_onboarding_resumes_after_an_interruption(home: Path, gateway_url: str) -> None:
    """Material created but nothing submitted (a crash after step 1): a rerun finishes the job.

    Running it once more then finds every step done and submits no config update.
    """
    from crypto.onboarding import add_department
    from gateway.client.operator import onboard_department

    add_department(home, org="Labour", region="510100", officer_role="labour_inspector", now=_now())
    resumed = onboard_department(
        home, org="Labour", region="510100", officer_role="labour_inspector",
        gateway_url=gateway_url,
    )  # fmt: skip
    assert resumed.config_update is not None
    assert resumed.add_department_tx is not None
    assert "Labour" not in resumed.approved_by  # the new department does not approve itself
    again = onboard_department(
        home, org="Labour", region="510100", officer_role="labour_inspector",
        gateway_url=gateway_url,
    )  # fmt: skip
    assert again.config_update is None
    assert again.add_department_tx is None
    with Client.from_home(home, "auditor.audit.sz1", gateway_url=gateway_url) as auditor:
        snapshot = auditor.run(gov.config_block(auditor.operations))
    assert "LabourMSP" in snapshot.msp_ids


def _now() -> datetime:
    return datetime.now(UTC)


def test_config_update_needs_an_admin_creator_and_enough_signatures(
    home: Path, gateway_url: str, clients: dict[str, Client], onboarded: dict[str, object]
) -> None:
    consortium = Consortium.load(home)
    officer = _client(clients, home, gateway_url, "officer.education.sz1")
    admin_name = "admin.education"
    admin = _client(clients, home, gateway_url, admin_name)
    snapshot = admin.run(gov.config_block(admin.operations))
    original = read_config(snapshot.block)
    channel = admin.ledger_info().channel
    height = admin.ledger_info().height
    target = consortium.identity("officer.health.sz1")
    crl = consortium.certificate_authority("Health").revocation_list(
        {target.certificate.serial_number: target.certificate.not_valid_before_utc},
        now=target.certificate.not_valid_before_utc,
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    updated = with_revocation_list(original, target.msp_id, crl.public_bytes(Encoding.PEM))
    update = compute_update(channel, original, updated).SerializeToString()

    # Education's admin cannot revoke a Health certificate: Health's Admins policy decides.
    wrong = consortium.identity(admin_name)
    envelope = config_update_envelope(
        channel,
        update,
        [sign_config_update(update, wrong)],
        creator=wrong,
        now=admin.operations.now(),
    )
    with pytest.raises(ClientError) as refused:
        admin.run(gov.submit_config_update(admin.operations, envelope))
    assert refused.value.status in (403, 409)

    # An officer may not submit config updates at all, even a correctly signed one.
    health_admin = consortium.identity("admin.health")
    signed = [sign_config_update(update, health_admin)]
    officer_identity = consortium.identity("officer.education.sz1")
    by_officer = config_update_envelope(
        channel, update, signed, creator=officer_identity, now=officer.operations.now()
    )
    with pytest.raises(ClientError) as forbidden:
        officer.run(gov.submit_config_update(officer.operations, by_officer))
    assert forbidden.value.status == 403

    # Someone else's envelope is refused: the HTTP caller must be the creator.
    by_health = config_update_envelope(
        channel, update, signed, creator=health_admin, now=admin.operations.now()
    )
    with pytest.raises(ClientError) as mismatch:
        admin.run(gov.submit_config_update(admin.operations, by_health))
    assert mismatch.value.code == "creator_mismatch"

    assert admin.ledger_info().height == height  # nothing was written


def test_revoked_certificate_is_refused_by_the_gateway(
    home: Path,
    gateway_url: str,
    clients: dict[str, Client],
    onboarded: dict[str, object],
    tmp_path: Path,
) -> None:
    name = "officer.hrss.sz1"
    officer = _client(clients, home, gateway_url, name)
    person = new_person()
    insurance = record("social_insurance", person)
    registrar = _client(clients, home, gateway_url, "registrar.hrss.sz1")
    receipt = registrar.put_record("social_insurance", person, insurance)
    granted = officer.request_access(
        receipt.subject, ["social_insurance"], "T2", "social_insurance_transfer"
    )
    assert granted.decision == "granted"  # keys released before the revocation
    committed = revoke_certificate(
        home, identity_name=name, admin_name="admin.hrss", gateway_url=gateway_url
    )
    assert committed.sequence >= 2
    with pytest.raises(ClientError) as refused:
        officer.ledger_info()
    assert refused.value.code == "certificate_revoked"
    assert refused.value.status == 401
    # Other HRSS identities are unaffected.
    other = _client(clients, home, gateway_url, "admin.hrss")
    assert other.ledger_info().height > committed.block_number

    # The auditor holds the custodian's log to the CRLs in force where each release was
    # checked: the genuine release (before the revocation) passes, the same release made
    # against state holding the revocation is named.
    log = release_log_path(home, "HRSS")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    [genuine, *_] = [r for r in lines if r["tx_id"] == granted.tx_id]
    assert genuine["ledger_height"] <= committed.block_number
    late = {**genuine, "ledger_height": committed.block_number + 1}
    forged = tmp_path / "releases.jsonl"
    forged.write_text("".join(json.dumps(r) + "\n" for r in [*lines, late]))
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["audit", "replay", "--gateway", gateway_url, "--as", "auditor.audit.sz1",
         "--identity-home", str(home), "--workers", "0", "--key-releases", str(forged),
         "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    findings = json.loads(report.read_text())["findings"]
    assert [f["kind"] for f in findings] == ["key_release_untraced"]
    assert f"line {len(lines) + 1}:" in findings[0]["message"]
    assert "revoked on the channel" in findings[0]["message"]
    assert f"config block {committed.block_number}" in findings[0]["message"]


def test_unsigned_governance_requests_are_problems(gateway_url: str) -> None:
    answer = httpx.get(f"{gateway_url}/v1/governance/config")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    body = {"envelope": base64.b64encode(b"not an envelope").decode()}
    posted = httpx.post(f"{gateway_url}/v1/governance/config-updates", json=body)
    assert posted.status_code == 401


def test_renewed_signing_key_works_and_the_old_one_is_refused(
    home: Path, gateway_url: str, onboarded: dict[str, object]
) -> None:
    name = "officer.education.sz1"
    old = Consortium.load(home).identity(name)
    with Client.from_home(home, name, gateway_url=gateway_url) as before:
        assert before.ledger_info().height > 0
    report = renew_certificate(
        home, identity_name=name, admin_name="admin.education", gateway_url=gateway_url
    )
    assert report.old_serial == old.certificate.serial_number
    assert report.encryption_key_registered
    assert not (identity_dir(home, old.org, name) / "msp.previous").exists()
    renewed = Consortium.load(home).identity(name)
    assert renewed.certificate.serial_number == report.new_serial != report.old_serial

    # The new key signs requests and access transactions; grants are sealed to its X25519 key.
    person = new_person()
    permit = record("residence_permit", person)
    with Client.from_home(home, "registrar.publicsecurity.sz1", gateway_url=gateway_url) as reg:
        receipt = reg.put_record("residence_permit", person, permit)
    with Client.from_home(home, name, gateway_url=gateway_url) as after:
        result = after.request_access(
            receipt.subject, ["residence_permit"], "T1", "school_enrolment"
        )
    assert result.decision == "granted"
    assert result.granted[0].fields == up_to("residence_permit", permit, "T1")

    # A client still holding the old key is refused: its certificate is revoked on the channel.
    from gateway.client.flows import Operations

    stale = Operations(old, encryption_key=None)
    with Client(stale, base_url=gateway_url) as client, pytest.raises(ClientError) as refused:
        client.ledger_info()
    assert refused.value.code == "certificate_revoked"


def test_auditor_replays_the_governed_ledger_without_findings(
    home: Path, gateway_url: str, onboarded: dict[str, object], tmp_path: Path
) -> None:
    """Config updates, AddDepartment, InstallPolicy and revocations all re-verify independently."""
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["audit", "replay", "--gateway", gateway_url, "--as", "auditor.audit.sz1",
         "--identity-home", str(home), "--workers", "0", "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    replayed = json.loads(report.read_text())
    assert replayed["findings"] == []


def test_a_renewal_killed_between_its_renames_is_finished_by_running_it_again(
    home: Path, gateway_url: str, onboarded: dict[str, object]
) -> None:
    """The state a SIGKILL between ``msp -> msp.previous`` and ``msp.next -> msp`` leaves."""
    name = "officer.publicsecurity.cd1"
    old = Consortium.load(home).identity(name)
    folder = identity_dir(home, old.org, name)
    authority = Consortium.load(home).certificate_authority(old.org)
    certificate, key = authority.issue(
        common_name=name,
        node_ou="client",
        attributes={k: v for k, v in old.attributes.items() if not k.startswith("hf.")},
        now=_now(),
    )
    from crypto.msp import write_local_msp

    write_local_msp(
        folder / "msp.next", ca_cert=authority.certificate, certificate=certificate, private_key=key
    )
    (folder / "msp").rename(folder / "msp.previous")  # ... and the process dies here

    result = CliRunner().invoke(app, ["identities", "--home", str(home)])
    assert result.exit_code == 1
    assert "renewal_interrupted" in result.output  # one clear line, not a stack trace
    assert f"certificate renew --identity {name}" in result.output

    report = renew_certificate(
        home, identity_name=name, admin_name="admin.publicsecurity", gateway_url=gateway_url
    )
    assert report.old_serial == old.certificate.serial_number
    assert report.new_serial == certificate.serial_number  # the staged certificate, not a third
    assert not (folder / "msp.previous").exists()
    assert not (folder / "msp.next").exists()


def test_an_approval_by_a_revoked_admin_does_not_count(
    home: Path, gateway_url: str, onboarded: dict[str, object]
) -> None:
    """A leaked admin key, revoked on the channel, cannot help make a majority."""
    revoke_certificate(
        home, identity_name="admin.tax", admin_name="admin.tax", gateway_url=gateway_url
    )
    with Client.from_home(home, "admin.publicsecurity", gateway_url=gateway_url) as admin:
        anchored = admin.run(gov.anchored_policy(admin.operations))
        height = admin.ledger_info().height
    bundle = anchored.bundle.with_version(anchored.version + 1)
    approvers = ["admin.publicsecurity", "admin.tax", "admin.hrss", "admin.housing", "admin.health"]
    with pytest.raises(ClientError) as refused:
        install_policy(home, bundle=bundle, approvers=approvers, gateway_url=gateway_url)
    assert (refused.value.status, refused.value.code) == (403, "approval_revoked")
    with Client.from_home(home, "admin.publicsecurity", gateway_url=gateway_url) as admin:
        assert admin.ledger_info().height == height  # nothing was endorsed or written
    others = [a for a in approvers if a != "admin.tax"] + ["admin.education", "admin.audit"]
    installed = install_policy(home, bundle=bundle, approvers=others, gateway_url=gateway_url)
    assert installed["version"] == anchored.version + 1
    assert "Tax" not in installed["approved_by"]
