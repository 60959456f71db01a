"""Who may approve a governance change, re-checked from the blocks alone.

``InstallPolicy`` and ``AddDepartment`` carry the department admins'
approvals; the chaincode checked them when it ran, and the audit checks them
again under its own view of the ledger (:mod:`audit.accessledger`). An
approval counts only if its signer's certificate chains to one of the
departments pinned so far, has NodeOU ``admin`` and is not revoked by a CRL
of the channel configuration in force; a strict majority of departments must
approve (:func:`policies.governance.verify_approvals`,
:func:`policies.departments.verify_department_approvals`).

:class:`Approvers` answers for one transaction, given the departments and
channel MSPs in force at it; each check returns the problems it found as
sentences (empty when the approvals hold), for the observer to report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from audit.namespace import Department
from crypto.certificates import node_ou, validate_certificate
from crypto.errors import AccessLedgerError
from network.fabric.msp import MSPRegistry
from network.fabric.transactions import ParsedTransaction
from policies.bundle import PolicyBundle
from policies.departments import verify_department_approvals
from policies.governance import Approval, majority, signer_certificate, verify_approvals

_NOT_AN_ADMIN = "an approval is not signed by an unrevoked department admin"


class _NotAnAdmin(Exception):
    """An approval's signer is not an admin of a current department."""


@dataclass(frozen=True)
class Approvers:
    """The departments and channel MSPs in force at one transaction (module docstring)."""

    departments: Mapping[str, Department]
    #: The channel's MSPs (with their CRLs) from the last config block, if any yet.
    channel_msps: MSPRegistry | None

    def department_of(self, cert: x509.Certificate, tx: ParsedTransaction) -> str | None:
        """The department whose pinned roots issued ``cert`` (valid at ``tx``'s time), if any."""
        if tx.timestamp is None:
            return None
        for department in self.departments.values():
            try:
                validate_certificate(cert, ca_certs=department.roots, now=tx.timestamp)
            except AccessLedgerError:
                continue
            return department.org
        return None

    def revoked(self, cert: x509.Certificate) -> bool:
        """Whether a CRL in the channel config in force revokes ``cert``."""
        msps = self.channel_msps
        return msps is not None and any(msp.revokes(cert) for msp in msps.msps.values())

    def policy_problems(
        self, bundle: PolicyBundle, argument: Any, tx: ParsedTransaction
    ) -> list[str]:
        """Re-verify the admins' approvals carried by the InstallPolicy transaction."""
        if not self.departments:
            return ["installed before the ledger was initialised"]
        if not isinstance(argument, Mapping) or not isinstance(argument.get("approvals"), list):
            return ["the transaction carries no approvals"]
        try:
            carried = PolicyBundle.from_dict(argument["bundle"])
        except (AccessLedgerError, KeyError, TypeError) as exc:
            return [f"the transaction's bundle does not load: {exc}"]
        if carried.bundle_hash != bundle.bundle_hash:
            return ["the stored bundle is not the bundle the admins' transaction carried"]
        required = majority(len(self.departments))
        return self._problems(
            argument["approvals"],
            tx,
            lambda approvals, certs: verify_approvals(
                bundle, approvals, certs, required=required, now=tx.timestamp
            ),
            (AccessLedgerError, TypeError),
        )

    def department_problems(self, argument: Any, tx: ParsedTransaction) -> list[str]:
        """Re-verify the admins' approvals carried by the AddDepartment transaction."""
        if not self.departments:
            return ["a department was added before the ledger was initialised"]
        if not isinstance(argument, Mapping) or not isinstance(argument.get("approvals"), list):
            return ["the transaction carries no approvals"]
        required = majority(len(self.departments))
        return self._problems(
            argument["approvals"],
            tx,
            lambda approvals, certs: verify_department_approvals(
                argument["department"], approvals, certs, required=required, now=tx.timestamp
            ),
            (AccessLedgerError, KeyError, TypeError),
        )

    def _problems(
        self,
        raw_approvals: list[Any],
        tx: ParsedTransaction,
        verify: Callable[[list[Approval], dict[str, list[x509.Certificate]]], object],
        refusals: tuple[type[Exception], ...],
    ) -> list[str]:
        """Run ``verify`` on the approvals by admins in force; what was wrong, if anything."""
        try:
            approvals, admin_certs = self._admin_approvals(raw_approvals, tx)
            verify(approvals, admin_certs)
        except _NotAnAdmin:
            return [_NOT_AN_ADMIN]
        except refusals as exc:
            return [f"approvals do not verify: {exc}"]
        return []

    def _admin_approvals(
        self, items: Any, tx: ParsedTransaction
    ) -> tuple[list[Approval], dict[str, list[x509.Certificate]]]:
        """The approvals, with each signer resolved to the current department it is an admin of."""
        admin_certs: dict[str, list[x509.Certificate]] = {org: [] for org in self.departments}
        approvals = []
        for item in items:
            approval = Approval.from_dict(item)
            cert = signer_certificate(approval.signer)
            org = self.department_of(cert, tx)
            if org is None or node_ou(cert) != "admin" or self.revoked(cert):
                raise _NotAnAdmin
            admin_certs[org].append(cert)
            approvals.append(approval)
        return approvals, admin_certs
