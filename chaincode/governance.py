"""Ledger set-up and policy governance: InitLedger, InstallPolicy, GetPolicy.

``InitLedger`` pins the departments and their root CAs (see
:mod:`chaincode.caller` for why). It runs once; the caller must be an admin
(NodeOU ``admin``) of one of the departments it names.

``InstallPolicy`` anchors a policy bundle (:class:`policies.bundle.PolicyBundle`:
Cedar schema, policies, record catalogue) under a version number higher than
the current one. It carries approvals -- admins' signatures over the bundle's
hash and version -- and succeeds only when a strict majority of *all*
departments approved (5 of 8). Each approving certificate must be issued by
its department's pinned root CA, have NodeOU ``admin`` and be valid at the
transaction time; :func:`policies.governance.verify_approvals` then checks
signatures and counts departments. The bundle is stored as its canonical
bytes, so the SHA-256 of the stored value *is* the bundle hash and any
tampering with state is detected when the bundle is loaded.

Every access event records the policy version and bundle hash it was decided
under (I4): an auditor re-evaluates it against exactly that bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509

from chaincode.authz import require_admin
from chaincode.caller import LedgerConfig, identify, identify_certificate
from chaincode.codec import check_fields, integer
from chaincode.context import Tx
from chaincode.errors import Conflict, Forbidden, InvalidArgument, NotFound, PolicyNotInstalled
from chaincode.ledger import (
    CITIZEN_INDEX_KEY,
    CONFIG_KEY,
    MARKER,
    POLICY_BUNDLE,
    POLICY_KEY,
    POLICY_META,
    sequence_key,
)
from crypto.identity import NodeOU
from policies.bundle import PolicyBundle
from policies.errors import ApprovalError, BundleError, InsufficientApprovalsError
from policies.governance import Approval, majority, signer_certificate, verify_approvals

_MAX_APPROVALS: Final = 64
_BUNDLE_CACHE_SIZE: Final = 4
# Compiled bundles by hash: building a PolicySet and catalogue takes milliseconds.
# Keyed by content hash, so a cached entry is exactly what the state holds.
_bundles: OrderedDict[str, PolicyBundle] = OrderedDict()


@dataclass(frozen=True)
class AnchoredPolicy:
    """The policy version in force for a transaction."""

    version: int
    bundle_hash: str
    bundle: PolicyBundle

    def ref(self) -> dict[str, Any]:
        return {"version": self.version, "bundle_hash": self.bundle_hash}


def _bundle_from_bytes(data: bytes, expected_hash: str) -> PolicyBundle:
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_hash:
        raise Conflict(
            f"stored policy bundle hashes to {digest}, not the anchored {expected_hash}",
            code="policy_tampered",
        )
    cached = _bundles.get(digest)
    if cached is not None:
        _bundles.move_to_end(digest)
        return cached
    bundle = PolicyBundle.from_dict(json.loads(data))
    _bundles[digest] = bundle
    while len(_bundles) > _BUNDLE_CACHE_SIZE:
        _bundles.popitem(last=False)
    return bundle


async def load_config(tx: Tx) -> LedgerConfig:
    """The pinned configuration (raises ``ledger_not_initialised`` before InitLedger)."""
    return await tx.config()


async def anchored_policy(tx: Tx) -> AnchoredPolicy:
    """The current policy version; always reads the same keys, cached or not (I4)."""
    pointer = await tx.ledger.get_json(POLICY_KEY)
    if pointer is None:
        raise PolicyNotInstalled("no policy bundle has been installed on this ledger")
    version = int(pointer["version"])
    data = await tx.ledger.get(tx.ledger.key(POLICY_BUNDLE, sequence_key(version)))
    if data is None:
        raise Conflict(f"policy version {version} is anchored but its bundle is missing")
    bundle = _bundle_from_bytes(data, str(pointer["bundle_hash"]))
    return AnchoredPolicy(version=version, bundle_hash=bundle.bundle_hash, bundle=bundle)


# -- InitLedger --------------------------------------------------------------------


async def init_ledger(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Pin the departments; once only, by an admin of one of them."""
    if await tx.ledger.get(CONFIG_KEY) is not None:
        raise Conflict("the ledger is already initialised", code="already_initialised")
    config = LedgerConfig.from_dict(arg)
    msp_id, id_bytes = tx.ledger.creator()
    caller = identify(config, msp_id, id_bytes, now=tx.ledger.now)
    require_admin(caller)
    await tx.ledger.put_json(CONFIG_KEY, config.to_dict())
    # No citizen is bound yet, so the subject index of citizen credentials is complete.
    await tx.ledger.put(CITIZEN_INDEX_KEY, MARKER)
    result = {
        "departments": [{"org": d.org, "msp_id": d.msp_id} for d in config.departments],
        "request_window_seconds": config.request_window,
        "initialised_by": caller.ref(),
        "initialised_at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
    }
    tx.ledger.set_event("LedgerInitialised", result)
    return result


# -- InstallPolicy -----------------------------------------------------------------


def approving_admins(
    config: LedgerConfig, approvals: Sequence[Approval], *, now: datetime
) -> dict[str, list[x509.Certificate]]:
    """Each current department's admin certificates among the approvals' signers.

    Only a certificate issued by a pinned department root, valid at ``now``
    and with NodeOU ``admin`` counts; any other signer refuses the whole call
    (``approval_invalid``), so a governance decision never rests on a guess.
    """
    admin_certs: dict[str, list[x509.Certificate]] = {org: [] for org in config.orgs}
    for index, approval in enumerate(approvals):
        try:
            cert = signer_certificate(approval.signer)
        except ApprovalError as exc:
            raise InvalidArgument(f"approval {index}: {exc.message}", code=exc.code) from None
        try:
            signer = identify_certificate(config, cert, now=now, what=f"approval {index}")
        except Forbidden as exc:
            raise Forbidden(exc.message, code="approval_invalid") from None
        if signer.node_ou != NodeOU.ADMIN:
            raise Forbidden(
                f"approval {index}: {signer.org} signer is not an admin (NodeOU {signer.node_ou})",
                code="approval_invalid",
            )
        admin_certs[signer.org].append(signer.certificate)
    return admin_certs


def parse_approvals(arg: dict[str, Any]) -> list[Approval]:
    """``arg["approvals"]`` as :class:`Approval` objects (1 to 64), or ``invalid_argument``."""
    items = arg["approvals"]
    if not isinstance(items, list) or not items or len(items) > _MAX_APPROVALS:
        raise InvalidArgument(f"approvals must be a list of 1 to {_MAX_APPROVALS} approvals")
    approvals = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidArgument("each approval must be an object {signer, signature}")
        check_fields(item, "approval", {"signer", "signature"})
        try:
            approvals.append(Approval.from_dict(item))
        except ApprovalError as exc:
            raise InvalidArgument(exc.message, code=exc.code) from None
    return approvals


async def install_policy(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """Anchor a new policy version approved by a strict majority of department admins."""
    check_fields(arg, "InstallPolicy argument", {"bundle", "approvals"})
    config = await tx.config()
    caller = await tx.caller()
    require_admin(caller)
    if not isinstance(arg["bundle"], dict):
        raise InvalidArgument("bundle must be a policy bundle object")
    try:
        bundle = PolicyBundle.from_dict(arg["bundle"])
    except BundleError as exc:
        raise InvalidArgument(exc.message, code=exc.code) from None
    approvals = parse_approvals(arg)

    pointer = await tx.ledger.get_json(POLICY_KEY)
    current = int(pointer["version"]) if pointer else 0
    if bundle.version <= current:
        raise Conflict(
            f"policy version {bundle.version} is not newer than the installed version {current}",
            code="policy_version_stale",
        )

    admin_certs = approving_admins(config, approvals, now=tx.ledger.now)
    try:
        approved_by = verify_approvals(
            bundle,
            approvals,
            admin_certs,
            required=majority(len(config.departments)),
            now=tx.ledger.now,
        )
    except InsufficientApprovalsError as exc:
        raise Forbidden(exc.message, code=exc.code) from None
    except ApprovalError as exc:
        raise Forbidden(exc.message, code=exc.code) from None

    meta = {
        "version": bundle.version,
        "bundle_hash": bundle.bundle_hash,
        "previous_version": current or None,
        "approved_by": list(approved_by),
        "approvals_required": majority(len(config.departments)),
        "departments": len(config.departments),
        "installed_by": caller.ref(),
        "installed_at": tx.ledger.now_text,
        "tx_id": tx.ledger.tx_id,
    }
    version_key = sequence_key(bundle.version)
    await tx.ledger.put(tx.ledger.key(POLICY_BUNDLE, version_key), bundle.canonical_bytes())
    await tx.ledger.put_json(tx.ledger.key(POLICY_META, version_key), meta)
    await tx.ledger.put_json(POLICY_KEY, meta)
    tx.ledger.set_event("PolicyInstalled", meta)
    return meta


# -- GetPolicy ---------------------------------------------------------------------


async def get_policy(tx: Tx, arg: dict[str, Any]) -> dict[str, Any]:
    """The installed policy's metadata (``version`` picks an older one; ``include_bundle``)."""
    check_fields(arg, "GetPolicy argument", set(), {"version", "include_bundle"})
    await tx.caller()  # any identity of a department may read the policy
    include = arg.get("include_bundle", False)
    if not isinstance(include, bool):
        raise InvalidArgument("include_bundle must be true or false")
    if "version" in arg:
        version = integer(arg, "version", low=1, high=99_999_999)
    else:
        pointer = await tx.ledger.get_json(POLICY_KEY)
        if pointer is None:
            raise PolicyNotInstalled("no policy bundle has been installed on this ledger")
        version = int(pointer["version"])
    meta = await tx.ledger.get_json(tx.ledger.key(POLICY_META, sequence_key(version)))
    if meta is None:
        raise NotFound(f"policy version {version} was never installed")
    result: dict[str, Any] = {"policy": meta}
    if include:
        data = await tx.ledger.get(tx.ledger.key(POLICY_BUNDLE, sequence_key(version)))
        if data is None:
            raise Conflict(f"policy version {version} has no stored bundle")
        result["bundle"] = _bundle_from_bytes(data, str(meta["bundle_hash"])).to_dict()
    return result
