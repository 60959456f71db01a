"""Operator jobs, end to end from a home: onboard a department, revoke a certificate, change policy.

Each job is the sequence a consortium operator would run by hand on
Hyperledger Fabric, done with the home's keys and the gateway's HTTP API:

* **Onboard a department** (:func:`onboard_department`): create the
  department's CA, MSP and first identities in the home
  (:func:`crypto.consortium.add_department`); fetch the channel config; add
  the organisation's MSP and widen the endorsement policy
  (:func:`network.fabric.configtx.with_organization`); have a majority of
  the current departments' admins sign the ``ConfigUpdate``; submit it
  (``POST /v1/governance/config-updates``); then have the same admins approve
  ``AddDepartment`` so the contract accepts the new department's identities;
  finally the new identities register their X25519 keys, each signing its
  own transaction.
* **Revoke a certificate** (:func:`revoke_certificate`): the organisation's
  CA signs a CRL naming the certificate; the organisation's admin signs the
  config update that adds it to the MSP. From that config block on, the
  validator, the endorsers and the gateway refuse the certificate.
* **Change policy** (:func:`install_policy`): a new bundle version approved
  by a majority of department admins, through ``InstallPolicy``.

In a real consortium each admin signs on their own machine; here the demo
home holds every admin's key, so ``approvers`` names which of them sign.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from chaincode.departments import department_approval
from crypto.certificates import certificate_to_pem
from crypto.consortium import ENCRYPTING_KINDS, Consortium, identity_dir
from crypto.errors import AccessLedgerError
from crypto.identity import NODE_OU_FOR_KIND, Identity, IdentityKind
from crypto.msp import read_local_msp, write_local_msp
from crypto.onboarding import add_department
from gateway.client import governance
from gateway.client.client import Client
from gateway.client.errors import Conflict
from gateway.client.governance import ConfigUpdateCommitted
from network.fabric.configblock import load_msp_config, read_config
from network.fabric.configtx import (
    compute_update,
    config_update_envelope,
    sign_config_update,
    with_organization,
    with_revocation_list,
)
from network.topology import Topology
from policies.bundle import PolicyBundle
from policies.governance import majority, sign_approval


class OperatorError(AccessLedgerError):
    """An operator job cannot be carried out as asked (the message says why)."""

    code = "operator_job_failed"


@dataclass
class OnboardingReport:
    """What :func:`onboard_department` did (``None``: that step was already done)."""

    org: str
    msp_id: str
    approved_by: list[str]
    config_update: ConfigUpdateCommitted | None = None
    add_department_tx: str | None = None
    identities: list[str] = field(default_factory=list)
    keys_registered: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        update = self.config_update
        return {
            "org": self.org,
            "msp_id": self.msp_id,
            "config_update": None
            if update is None
            else {
                "tx_id": update.tx_id,
                "block_number": update.block_number,
                "sequence": update.sequence,
            },
            "add_department_tx": self.add_department_tx,
            "approved_by": self.approved_by,
            "identities": self.identities,
            "keys_registered": self.keys_registered,
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def department_admins(consortium: Consortium) -> list[Identity]:
    """Every department admin whose key the home holds (the orderer org excluded)."""
    return [
        identity
        for identity in consortium.identities(kind=IdentityKind.ADMIN)
        if not consortium.org(identity.org).is_orderer and identity.private_key is not None
    ]


def choose_approvers(consortium: Consortium, names: Sequence[str]) -> list[Identity]:
    """The named admins (in order), or by default every department admin of the home."""
    if not names:
        admins = department_admins(consortium)
    else:
        admins = [consortium.identity(name) for name in names]
    for admin in admins:
        if admin.kind != IdentityKind.ADMIN:
            raise OperatorError(f"{admin.name} is not an admin identity", code="not_an_admin")
        if admin.private_key is None:
            raise OperatorError(f"the home holds no private key for {admin.name}")
    if not admins:
        raise OperatorError("no department admin keys in this home to approve with")
    return admins


def _channel_update(
    client: Client, approvers: Sequence[Identity], updated: Any, original: Any, now: datetime
) -> ConfigUpdateCommitted:
    info = client.ledger_info()
    update = compute_update(info.channel, original, updated).SerializeToString()
    signatures = [sign_config_update(update, admin) for admin in approvers]
    creator = client.operations.identity
    envelope = config_update_envelope(info.channel, update, signatures, creator=creator, now=now)
    return client.run(governance.submit_config_update(client.operations, envelope))


def onboard_department(
    home: Path,
    *,
    org: str,
    region: str,
    officer_role: str,
    approvers: Sequence[str] = (),
    gateway_url: str | None = None,
    now: datetime | None = None,
) -> OnboardingReport:
    """Onboard a new department through a running gateway (see the module docstring).

    Resumable: each step is skipped when it is already done (the department's
    material in the home, its MSP in the channel config, its entry in the
    contract), so running the command again after an interruption finishes
    the job instead of failing half-way.
    """
    home = Path(home)
    moment = now or _utc_now()
    before = Consortium.load(home)
    resuming = any(o.name == org for o in before.orgs())
    current = [o for o in before.orgs() if not o.is_orderer and o.name != org]
    admins = [a for a in choose_approvers(before, approvers) if a.org != org]
    approving = {a.org for a in admins}
    if len(approving) < majority(len(current)):
        raise OperatorError(
            f"{len(approving)} departments approve; a strict majority of"
            f" {len(current)} is {majority(len(current))}",
            code="insufficient_approvals",
        )
    if not resuming:
        add_department(home, org=org, region=region, officer_role=officer_role, now=moment)
    after = Consortium.load(home)
    info = after.org(org)
    topology = Topology.load(home / "network.yaml")
    spec = topology.organization(info.name)
    department = {
        "org": info.name,
        "msp_id": info.msp_id,
        "root_certs": [certificate_to_pem(c).decode("ascii") for c in after.org_ca_certs(org)],
    }
    report = OnboardingReport(org=info.name, msp_id=info.msp_id, approved_by=sorted(approving))
    with Client.from_home(home, admins[0].name, gateway_url=gateway_url) as client:
        snapshot = client.run(governance.config_block(client.operations))
        if info.msp_id not in snapshot.msp_ids:
            original = read_config(snapshot.block)
            msp = load_msp_config(spec.msp_path(home), spec.msp_id)
            updated = with_organization(
                original, spec, msp, endorsement_policy=topology.endorsement_policy
            )
            report.config_update = _channel_update(client, admins, updated, original, moment)
        approvals = [department_approval(department, admin) for admin in admins]
        try:
            added = client.run(governance.add_department(client.operations, department, approvals))
            report.add_department_tx = added.tx_id
        except Conflict as exc:
            if exc.code != "department_exists":
                raise
    for identity in after.identities(org=info.name):
        report.identities.append(identity.name)
        if identity.kind in ENCRYPTING_KINDS:
            with Client.from_home(home, identity.name, gateway_url=gateway_url) as client:
                client.register_encryption_key()
            report.keys_registered.append(identity.name)
    return report


def _org_admin(consortium: Consortium, admin_name: str, target: Identity) -> Identity:
    """``admin_name``, checked to be an admin of ``target``'s own organisation."""
    admin = choose_approvers(consortium, [admin_name])[0]
    if admin.org != target.org:
        raise OperatorError(
            f"{admin.name} is an admin of {admin.org}; only an admin of {target.org} may"
            f" revoke or renew {target.name}",
            code="not_an_admin",
        )
    return admin


def _revoke(
    home: Path,
    admin: Identity,
    msp_id: str,
    certificate: x509.Certificate,
    gateway_url: str | None,
    moment: datetime,
) -> ConfigUpdateCommitted:
    """Add a CRL naming ``certificate`` to ``msp_id``'s MSP, signed by ``admin`` (its org's)."""
    authority = Consortium.load(home).certificate_authority(msp_id)
    crl = authority.revocation_list({certificate.serial_number: moment}, now=moment)
    with Client.from_home(home, admin.name, gateway_url=gateway_url) as client:
        snapshot = client.run(governance.config_block(client.operations))
        original = read_config(snapshot.block)
        updated = with_revocation_list(original, msp_id, crl.public_bytes(Encoding.PEM))
        return _channel_update(client, [admin], updated, original, moment)


def revoke_certificate(
    home: Path,
    *,
    identity_name: str,
    admin_name: str,
    gateway_url: str | None = None,
    now: datetime | None = None,
) -> ConfigUpdateCommitted:
    """Revoke ``identity_name``'s certificate on the channel, signed by its org's admin."""
    home = Path(home)
    moment = now or _utc_now()
    consortium = Consortium.load(home)
    target = consortium.identity(identity_name)
    admin = _org_admin(consortium, admin_name, target)
    return _revoke(home, admin, target.msp_id, target.certificate, gateway_url, moment)


@dataclass(frozen=True)
class RenewalReport:
    """What :func:`renew_certificate` did: the new certificate and the old one's revocation."""

    identity: str
    new_serial: int
    old_serial: int
    encryption_key_registered: bool
    revocation: ConfigUpdateCommitted

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "new_serial": format(self.new_serial, "x"),
            "old_serial": format(self.old_serial, "x"),
            "encryption_key_registered": self.encryption_key_registered,
            "revocation": {
                "tx_id": self.revocation.tx_id,
                "block_number": self.revocation.block_number,
                "sequence": self.revocation.sequence,
            },
        }


def _finish_interrupted_swap(home: Path, identity_name: str) -> None:
    """Complete a renewal killed between its two renames (``msp`` gone, both others there).

    The new MSP is complete in ``msp.next`` before the first rename, so moving
    it into place is always right; until then the home does not load.
    """
    for folder in home.glob(f"orgs/*/identities/{identity_name}"):
        interrupted = not (folder / "msp").exists() and (folder / "msp.previous").is_dir()
        if interrupted and (folder / "msp.next").is_dir():
            (folder / "msp.next").rename(folder / "msp")


def renew_certificate(
    home: Path,
    *,
    identity_name: str,
    admin_name: str,
    gateway_url: str | None = None,
    now: datetime | None = None,
) -> RenewalReport:
    """Rotate an identity's signing key: new key and certificate, then revoke the old one.

    Order matters for crash safety. The new MSP folder is written beside the
    old one and swapped in by renames, keeping the old as ``msp.previous``;
    the identity's X25519 key is bound to the new certificate (the registry
    is keyed by certificate); then the old certificate is revoked on the
    channel and only then is ``msp.previous`` (with the old private key)
    deleted. Re-running after a crash finds ``msp.previous`` and finishes
    the revocation instead of issuing yet another certificate.
    """
    home = Path(home)
    moment = now or _utc_now()
    _finish_interrupted_swap(home, identity_name)
    consortium = Consortium.load(home)
    current = consortium.identity(identity_name)
    admin = _org_admin(consortium, admin_name, current)
    folder = identity_dir(home, current.org, current.name)
    previous_dir = folder / "msp.previous"
    if previous_dir.exists():
        old_certificate = read_local_msp(previous_dir, with_key=False).certificate
    else:
        authority = consortium.certificate_authority(current.org)
        attributes = {k: v for k, v in current.attributes.items() if not k.startswith("hf.")}
        certificate, key = authority.issue(
            common_name=current.name,
            node_ou=NODE_OU_FOR_KIND[current.kind],
            attributes=attributes,
            now=moment,
        )
        staged = folder / "msp.next"
        shutil.rmtree(staged, ignore_errors=True)
        write_local_msp(
            staged, ca_cert=authority.certificate, certificate=certificate, private_key=key
        )
        (folder / "msp").rename(previous_dir)
        staged.rename(folder / "msp")
        old_certificate = current.certificate
    renewed = Consortium.load(home).identity(identity_name)
    registered = False
    if renewed.kind in ENCRYPTING_KINDS:
        with Client.from_home(home, renewed.name, gateway_url=gateway_url) as client:
            client.register_encryption_key()
        registered = True
    revocation = _revoke(home, admin, renewed.msp_id, old_certificate, gateway_url, moment)
    shutil.rmtree(previous_dir)
    return RenewalReport(
        identity=renewed.name,
        new_serial=renewed.certificate.serial_number,
        old_serial=old_certificate.serial_number,
        encryption_key_registered=registered,
        revocation=revocation,
    )


def install_policy(
    home: Path,
    *,
    bundle: PolicyBundle,
    approvers: Sequence[str] = (),
    gateway_url: str | None = None,
) -> dict[str, Any]:
    """Anchor ``bundle`` (its version must exceed the installed one) with admins' approvals."""
    consortium = Consortium.load(Path(home))
    admins = choose_approvers(consortium, approvers)
    approvals = [sign_approval(bundle, a.serialized(), a.signer).to_dict() for a in admins]
    with Client.from_home(home, admins[0].name, gateway_url=gateway_url) as client:
        committed = client.run(governance.install_policy(client.operations, bundle, approvals))
    return {"tx_id": committed.tx_id, "block_number": committed.block_number, **committed.result}
