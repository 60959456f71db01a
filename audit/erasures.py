"""Re-check an ``EraseRecord`` from the blocks alone (docs/chaincode.md, "Erasure").

An erasure destroys the payload off-chain, so the auditor must be able to
show from the ledger that it was the owner's decision and that nothing else
changed. :func:`check_erasure` takes the replayed record state before the
transaction, what the transaction wrote and the transaction itself, and
lists every disagreement:

* authorisation: the creator's certificate chains to the record's owning
  department (as pinned by ``InitLedger``/``AddDepartment``) and is a
  registrar (NodeOU ``client``, attribute ``role=registrar``) or an admin
  (NodeOU ``admin``) -- the rule of :func:`chaincode.authz.require_eraser`,
  re-implemented here because audit must not trust the contract package;
* the record existed, was not erased already, and changed only by the
  ``erased`` marker (hashes, versions and history stay);
* the erasure document names the record's facts, the transaction id, the
  transaction time, the creator, the argument's ``reason_hash``, and is the
  payload of the ``RecordErased`` chaincode event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from cryptography import x509

from audit.events import EventFormatError, parse_ledger_time
from crypto.certificates import certificate_fingerprint, node_ou, read_attributes
from crypto.errors import AccessLedgerError
from crypto.identity import REGISTRAR_ROLE
from network.fabric.transactions import ParsedTransaction

ERASE_FUNCTION: Final = "EraseRecord"
ERASURE_FORMAT: Final = "accessledger-erasure/1"
ERASED_EVENT: Final = "RecordErased"
_FACTS: Final = ("record_id", "record_type", "owner_org", "subject", "version")

#: The department a certificate belongs to at the transaction's time, or ``None``.
DepartmentOf = Callable[[x509.Certificate, ParsedTransaction], str | None]


def check_erasure(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    erasure: Mapping[str, Any],
    *,
    tx: ParsedTransaction,
    tx_id: str,
    argument: Any,
    event: tuple[str, Any] | None,
    department_of: DepartmentOf,
) -> list[str]:
    """Every way an EraseRecord transaction disagrees with the rules (module docstring)."""
    problems = []
    if before is None:
        problems.append("the record does not exist")
    elif "erased" in before:
        problems.append("the record was already erased")
    elif dict(after) != {**before, "erased": dict(erasure)}:
        problems.append("the record changed beyond the erasure marker")
    try:
        cert: x509.Certificate | None = x509.load_pem_x509_certificate(tx.creator_id_bytes)
    except ValueError:
        cert = None
    if cert is None:
        problems.append("the creator has no certificate")
    else:
        problems += _authorisation(cert, tx, before, department_of)
        problems += _document(erasure, before, tx_id, tx, cert, argument)
    if event is None or event[0] != ERASED_EVENT or event[1] != dict(erasure):
        problems.append(f"the {ERASED_EVENT} chaincode event differs from the erasure")
    return problems


def _authorisation(
    cert: x509.Certificate,
    tx: ParsedTransaction,
    record: Mapping[str, Any] | None,
    department_of: DepartmentOf,
) -> list[str]:
    try:
        role = read_attributes(cert).get("role")
    except AccessLedgerError:
        role = None
    ou = node_ou(cert)
    owner = record.get("owner_org") if record is not None else None
    problems = []
    if department_of(cert, tx) != owner or owner is None:
        problems.append(f"the creator is not an identity of the owner department {owner}")
    if not (ou == "admin" or (ou == "client" and role == REGISTRAR_ROLE)):
        problems.append("the creator is neither a registrar nor a department admin")
    return problems


def _document(
    erasure: Mapping[str, Any],
    record: Mapping[str, Any] | None,
    tx_id: str,
    tx: ParsedTransaction,
    cert: x509.Certificate,
    argument: Any,
) -> list[str]:
    problems = []
    if erasure.get("format") != ERASURE_FORMAT or erasure.get("tx_id") != tx_id:
        problems.append("the erasure's format or tx_id is wrong")
    if record is not None:
        problems += [
            f"the erasure's {name} is not the record's"
            for name in _FACTS
            if erasure.get(name) != record.get(name)
        ]
    try:
        if parse_ledger_time(erasure.get("erased_at"), "erased_at") != tx.timestamp:
            problems.append("erased_at is not the transaction time")
    except EventFormatError:
        problems.append("erased_at is not a ledger time")
    fingerprint = certificate_fingerprint(cert)
    by = erasure.get("erased_by")
    if not isinstance(by, Mapping) or (by.get("msp_id"), by.get("cert_fingerprint")) != (
        tx.creator_msp_id,
        fingerprint,
    ):
        problems.append("erased_by is not the transaction's creator")
    wanted = argument.get("reason_hash") if isinstance(argument, Mapping) else None
    if erasure.get("reason_hash") != wanted:
        problems.append("reason_hash is not the one the transaction carried")
    return problems
