"""First start of a home's ledger: pin the departments, anchor the policy, register keys.

An empty embedded ledger can decide nothing: the contract needs the pinned
departments (``InitLedger``), an anchored policy bundle (``InstallPolicy``,
approved by a majority of department admins) and, for key release, each
officer's X25519 key on the identity registry (``RegisterEncryptionKey``).
:func:`bootstrap_ledger` does what the operator of a demo or single-machine
home would otherwise do by hand, each step only if the ledger lacks it, each
as a normal transaction signed by the identity the contract requires (the
home holds their keys: this is the operator's set-up, not the gateway's
request path, which never signs for anyone).

In a multi-party deployment every department signs its own approvals and
every identity registers its own key (``POST /v1/transactions``); turn this
off with ``ACCESSLEDGER_BOOTSTRAP=false``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field

from chaincode import CHAINCODE_NAME, LedgerConfig
from chaincode.caller import certificate_fingerprint
from chaincode.codec import dumps
from chaincode.ledger import CONFIG_KEY, ENC_KEY, POLICY_KEY
from crypto.consortium import ENCRYPTING_KINDS, Consortium
from crypto.errors import AccessLedgerError
from crypto.identity import Identity, IdentityKind
from gateway.service.ledger import LedgerClient
from network.engine.network import EmbeddedNetwork
from policies.bundle import PolicyBundle
from policies.governance import sign_approval

logger = logging.getLogger("accessledger.gateway.bootstrap")


@dataclass
class BootstrapReport:
    """What :func:`bootstrap_ledger` did."""

    initialised: bool = False
    policy_version: int | None = None
    keys_registered: list[str] = field(default_factory=list)


def department_config(consortium: Consortium) -> LedgerConfig:
    """Every department of the home (not the orderer organisation) and its root CAs."""
    departments = {
        org.name: (org.msp_id, consortium.org_ca_certs(org.name))
        for org in consortium.orgs()
        if not org.is_orderer
    }
    return LedgerConfig.build(departments)


def _admins(consortium: Consortium) -> list[Identity]:
    admins = [
        identity
        for identity in consortium.identities(kind=IdentityKind.ADMIN)
        if not consortium.org(identity.org).is_orderer and identity.private_key is not None
    ]
    if not admins:
        raise AccessLedgerError(
            "the home holds no department admin keys to initialise the ledger with",
            code="bootstrap_impossible",
        )
    return admins


async def _submit(network: EmbeddedNetwork, identity: Identity, function: str, arg: str) -> None:
    await network.submit(identity, CHAINCODE_NAME, function, [arg])


async def bootstrap_ledger(
    ledger: LedgerClient, consortium: Consortium, *, register_keys: bool = True
) -> BootstrapReport:
    """Bring an empty or partly set-up ledger to a usable state (see the module docstring)."""
    report = BootstrapReport()
    network = ledger.network
    if ledger.state(CONFIG_KEY) is None:
        admin = _admins(consortium)[0]
        await _submit(network, admin, "InitLedger", department_config(consortium).to_json())
        report.initialised = True
        logger.info("ledger initialised by %s", admin.name)
    if ledger.state(POLICY_KEY) is None:
        admins = _admins(consortium)
        bundle = PolicyBundle.load_default()
        approvals = [sign_approval(bundle, a.serialized(), a.signer).to_dict() for a in admins]
        argument = dumps({"bundle": bundle.to_dict(), "approvals": approvals}).decode("utf-8")
        await _submit(network, admins[0], "InstallPolicy", argument)
        report.policy_version = bundle.version
        logger.info("policy version %d anchored", bundle.version)
    if register_keys:
        report.keys_registered = await _register_keys(ledger, consortium)
    return report


async def _register_keys(ledger: LedgerClient, consortium: Consortium) -> list[str]:
    """Register the home's X25519 keys that the ledger does not hold yet (concurrently)."""
    pending: list[tuple[Identity, str]] = []
    for identity in consortium.identities():
        if identity.kind not in ENCRYPTING_KINDS or identity.private_key is None:
            continue
        try:
            public = consortium.encryption_public_key(identity.name)
        except AccessLedgerError:
            continue  # this identity has no key file in the home
        encoded = base64.b64encode(public).decode("ascii")
        entry = ledger.state_json(
            ENC_KEY, identity.msp_id, certificate_fingerprint(identity.certificate)
        )
        if entry is not None and entry.get("public_key") == encoded:
            continue
        pending.append((identity, dumps({"public_key": encoded}).decode("utf-8")))
    await asyncio.gather(
        *(
            _submit(ledger.network, identity, "RegisterEncryptionKey", arg)
            for identity, arg in pending
        )
    )
    return [identity.name for identity, _ in pending]
