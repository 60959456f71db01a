"""AccessLedger's own chaincode namespace, audited as the replay goes.

:class:`AccessLedgerAudit` is a :class:`~audit.verifier.BlockObserver`. For
every *valid* transaction of AccessLedger's chaincode it reads the writes the
transaction committed (documented in docs/chaincode.md) and keeps the
auditor's own view of the ledger as of that transaction:

* the department configuration pinned by ``InitLedger``;
* every policy version, checked when installed: the stored bundle hashes to
  the anchored hash, re-encodes to the same canonical bytes, is the bundle the
  transaction carried, is newer than the previous one, and a strict majority
  of departments' admins (certificates issued by the pinned roots, NodeOU
  ``admin``) signed it (:func:`policies.governance.verify_approvals`);
* records and their versions (for the off-chain blob check), consents;
* erasures: each ``EraseRecord`` is re-authorised from the blocks (the
  creator's certificate chains to the record's owning department and is a
  registrar or an admin of it), must erase an existing, not yet erased record,
  and may change the record only by adding the ``erased`` marker; the
  erasure document, its ``RecordErased`` event and the transaction agree;
* access events: each ``RequestAccess`` event is re-decided by
  :func:`audit.decisions.recheck_access` under the policy version anchored
  at that height; later rewrites (contests, reviews) may change only the
  event's ``review``.

Writes to AccessLedger's keys by any other transaction kind (a policy
written outside ``InstallPolicy``, an event outside ``RequestAccess``,
``ContestAccess`` or ``ReviewAccess``) are findings.

Transactions of any other chaincode are left alone: access-policy checks
apply only to AccessLedger's namespace.

The key vocabulary and the values kept per transaction live in
:mod:`audit.namespace`; the re-check of admins' approvals in
:mod:`audit.approvals`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from audit.approvals import Approvers
from audit.decisions import DecisionInputs, recheck_access
from audit.erasures import ERASE_FUNCTION, check_erasure
from audit.events import AccessEvent, EventFormatError, parse_ledger_time
from audit.findings import Finding, FindingKind
from audit.namespace import (
    ACCESS,
    CONFIG_KEY,
    CONSENT,
    ENC_KEY,
    ERASURE,
    POLICY_BUNDLE,
    POLICY_KEY,
    POLICY_META,
    RECORD,
    WRITERS,
    AccessStats,
    AnchoredBundle,
    Department,
    EncryptionKey,
    RecordVersion,
    departments_from_config,
    json_value,
    split_key,
)
from crypto.errors import AccessLedgerError
from network.fabric.msp import MSPRegistry
from network.fabric.replay import ReplayedBlock
from network.fabric.transactions import CONFIG, ParsedTransaction
from network.fabric.validator import StateWrite, TxResult
from policies.bundle import PolicyBundle

#: Appends a finding for the current transaction: ``report(kind, message)``.
Report = Callable[[FindingKind, str], None]


@dataclass
class AccessLedgerAudit:
    """The observer; see the module docstring."""

    chaincode: str
    departments: dict[str, Department] = field(default_factory=dict)
    bundles: dict[int, AnchoredBundle] = field(default_factory=dict)
    current: AnchoredBundle | None = None
    records: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    subject_records: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)
    record_versions: dict[tuple[str, int], RecordVersion] = field(default_factory=dict)
    consents: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)
    events: dict[str, AccessEvent] = field(default_factory=dict)
    #: Committed erasure documents by record id.
    erasures: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The channel's MSPs in force (from the last config block), for revocation checks.
    channel_msps: MSPRegistry | None = None
    #: ``(first ledger height it governs, MSPs)`` of every config block, oldest first:
    #: key releases are checked against the CRLs in force at the height they were made.
    msp_history: list[tuple[int, MSPRegistry]] = field(default_factory=list)
    #: The certificate (PEM) each officer signed access requests with, by (msp_id, fingerprint).
    officer_certificates: dict[tuple[str, str], bytes] = field(default_factory=dict)
    #: Block of each committed erasure, by record id (key releases are checked against it).
    erasure_blocks: dict[str, int] = field(default_factory=dict)
    #: Registered encryption keys per ``(msp_id, cert_fingerprint)``, oldest first.
    keys: dict[tuple[str, str], list[EncryptionKey]] = field(default_factory=dict)
    stats: AccessStats = field(default_factory=AccessStats)

    # -- the observer entry point ------------------------------------------------------

    def observe(self, replayed: ReplayedBlock, findings: list[Finding]) -> None:
        for result in replayed.validation.results:
            tx = result.parsed
            if result.valid and tx is not None and tx.header_type == CONFIG:
                # The channel's MSPs (with their CRLs) in force from the next transaction on.
                self.channel_msps = MSPRegistry.from_config(tx.config_envelope.config)
                self.msp_history.append((replayed.number + 1, self.channel_msps))
                continue
            if not result.valid or tx is None or tx.action is None:
                continue
            if tx.action.chaincode_name != self.chaincode:
                continue
            try:
                self._transaction(replayed.number, result, tx, findings)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                # State the chaincode would never write (a forged value of the wrong shape).
                findings.append(
                    Finding(
                        FindingKind.ACCESS_EVENT,
                        f"AccessLedger state of this transaction is malformed: {exc!r}",
                        replayed.number,
                        result.index,
                        result.tx_id,
                    )
                )

    def _transaction(
        self, number: int, result: TxResult, tx: ParsedTransaction, findings: list[Finding]
    ) -> None:
        assert tx.action is not None
        function = tx.action.function or ""
        writes = [w for w in result.writes if w.namespace == self.chaincode]

        def report(kind: FindingKind, message: str) -> None:
            findings.append(Finding(kind, message, number, result.index, result.tx_id))

        by_type: dict[str, list[tuple[tuple[str, ...], StateWrite]]] = {}
        for w in writes:
            object_type, attributes = split_key(w.key)
            allowed = WRITERS.get(object_type)
            if allowed is not None and function not in allowed:
                kind = (
                    FindingKind.POLICY_BUNDLE
                    if object_type in (POLICY_BUNDLE, POLICY_META, POLICY_KEY)
                    else FindingKind.ACCESS_EVENT
                )
                report(kind, f"{function or 'a transaction'} wrote {object_type!r} state")
            by_type.setdefault(object_type, []).append((attributes, w))
        argument = json_value(tx.action.args[1]) if len(tx.action.args) > 1 else None

        if function == "InitLedger":
            self._init(by_type, report)
        elif function == "InstallPolicy":
            self._install(number, result, tx, argument, by_type, report)
        elif function == "AddDepartment":
            self._add_department(tx, argument, by_type, report)
        elif function == ERASE_FUNCTION:
            self._erase(result, tx, argument, by_type, report)
            if isinstance(argument, Mapping) and str(argument.get("record_id")) in self.erasures:
                self.erasure_blocks.setdefault(str(argument["record_id"]), number)
        for attributes, w in by_type.get(RECORD, []) if function != ERASE_FUNCTION else []:
            record = json_value(w.value)
            if isinstance(record, Mapping) and attributes:
                if "erased" in record or attributes[0] in self.erasures:
                    report(
                        FindingKind.ACCESS_EVENT,
                        f"{function} wrote record {attributes[0]} with or after an erasure",
                    )
                entry = RecordVersion(record, number, result.tx_id)
                self.records[attributes[0]] = record
                subject = str(record.get("subject", ""))
                self.subject_records.setdefault(subject, {})[attributes[0]] = record
                self.record_versions[(attributes[0], entry.version)] = entry
                self.stats.records += 1
        for attributes, w in by_type.get(CONSENT, []):
            consent = json_value(w.value)
            if isinstance(consent, Mapping) and len(attributes) == 2:
                self.consents.setdefault(attributes[0], {})[attributes[1]] = consent
        for attributes, w in by_type.get(ENC_KEY, []):
            self._key(attributes, w, report)
        events = by_type.get(ACCESS, [])
        if function == "RequestAccess" and not events:
            report(FindingKind.ACCESS_EVENT, "RequestAccess committed without an access event")
        for attributes, w in events:
            self._event(number, result, tx, function, argument, attributes, w, report)

    # -- configuration and governance ------------------------------------------------

    def _approvers(self) -> Approvers:
        """Who may approve a governance change at the current transaction."""
        return Approvers(self.departments, self.channel_msps)

    def _init(self, by_type: Mapping[str, list[Any]], report: Report) -> None:
        for _, w in by_type.get(CONFIG_KEY, []):
            config = json_value(w.value)
            try:
                self.departments = departments_from_config(config)
            except (AccessLedgerError, KeyError, TypeError, ValueError) as exc:
                report(FindingKind.ACCESS_EVENT, f"InitLedger configuration is unreadable: {exc}")

    def _add_department(
        self,
        tx: ParsedTransaction,
        argument: Any,
        by_type: Mapping[str, list[tuple[tuple[str, ...], StateWrite]]],
        report: Report,
    ) -> None:
        """Re-verify an AddDepartment: majority approvals, and config = before + the department."""
        writes = by_type.get(CONFIG_KEY, [])
        if len(writes) != 1:
            report(FindingKind.ACCESS_EVENT, "AddDepartment must write the configuration once")
            return
        try:
            after = departments_from_config(json_value(writes[0][1].value))
        except (AccessLedgerError, KeyError, TypeError, ValueError) as exc:
            report(FindingKind.ACCESS_EVENT, f"AddDepartment configuration is unreadable: {exc}")
            return
        problems = self._approvers().department_problems(argument, tx)
        added = {org: d for org, d in after.items() if org not in self.departments}
        unchanged = all(after.get(org) == d for org, d in self.departments.items())
        if not unchanged or len(added) != 1:
            problems.append("the stored configuration is not the previous one plus one department")
        elif isinstance(argument, Mapping) and isinstance(argument.get("department"), Mapping):
            [new] = added.values()
            if new.org != argument["department"].get("org"):
                problems.append("the stored department is not the one the admins approved")
        for problem in problems:
            report(FindingKind.ACCESS_EVENT, f"AddDepartment: {problem}")
        self.departments = after

    def _install(
        self,
        number: int,
        result: TxResult,
        tx: ParsedTransaction,
        argument: Any,
        by_type: Mapping[str, list[tuple[tuple[str, ...], StateWrite]]],
        report: Report,
    ) -> None:
        stored = by_type.get(POLICY_BUNDLE, [])
        metas = by_type.get(POLICY_META, [])
        pointer = by_type.get(POLICY_KEY, [])
        if len(stored) != 1 or len(metas) != 1 or len(pointer) != 1:
            report(FindingKind.POLICY_BUNDLE, "InstallPolicy must write one bundle, meta, pointer")
            return
        (key_attrs, bundle_write), (_, meta_write) = stored[0], metas[0]
        data = bundle_write.value or b""
        digest = hashlib.sha256(data).hexdigest()
        meta, anchor = json_value(meta_write.value), json_value(pointer[0][1].value)
        problems = []
        for name, doc in (("policy_meta", meta), ("policy pointer", anchor)):
            if not isinstance(doc, Mapping) or doc.get("bundle_hash") != digest:
                problems.append(f"{name} anchors a bundle hash other than the stored bundle's")
        bundle: PolicyBundle | None = None
        try:
            bundle = PolicyBundle.from_dict(json.loads(data))
        except (AccessLedgerError, ValueError, UnicodeDecodeError) as exc:
            problems.append(f"the stored bundle does not load: {exc}")
        if bundle is not None:
            if bundle.canonical_bytes() != data:
                problems.append("the stored bundle is not in canonical form")
            if key_attrs != (f"{bundle.version:08d}",) or (
                isinstance(meta, Mapping) and meta.get("version") != bundle.version
            ):
                problems.append("the bundle's version differs from the version it is stored under")
            previous = self.current.version if self.current else 0
            if bundle.version <= previous:
                problems.append(f"version {bundle.version} is not newer than {previous}")
            problems += self._approvers().policy_problems(bundle, argument, tx)
        version = bundle.version if bundle else key_attrs[0] if key_attrs else "?"
        for problem in problems:
            report(FindingKind.POLICY_BUNDLE, f"policy version {version}: {problem}")
        if bundle is not None:
            anchored = AnchoredBundle(bundle.version, digest, bundle, number, result.tx_id)
            self.bundles[bundle.version] = anchored
            self.current = anchored
            self.stats.policy_versions += 1

    def _key(self, attributes: tuple[str, ...], write: StateWrite, report: Report) -> None:
        entry = json_value(write.value)
        try:
            public = base64.b64decode(str(entry["public_key"]), validate=True)
            when = parse_ledger_time(entry["registered_at"], "registered_at")
        except (KeyError, TypeError, ValueError, binascii.Error, EventFormatError):
            report(FindingKind.ACCESS_EVENT, f"encryption key entry {attributes} is malformed")
            return
        if len(attributes) == 2:
            registered = EncryptionKey(when, hashlib.sha256(public).hexdigest())
            self.keys.setdefault((attributes[0], attributes[1]), []).append(registered)

    # -- erasure -------------------------------------------------------------------------

    def _erase(
        self,
        result: TxResult,
        tx: ParsedTransaction,
        argument: Any,
        by_type: Mapping[str, list[tuple[tuple[str, ...], StateWrite]]],
        report: Report,
    ) -> None:
        """Re-check an EraseRecord from the blocks alone (module docstring)."""
        record_id = argument.get("record_id") if isinstance(argument, Mapping) else None
        records, erasures = by_type.get(RECORD, []), by_type.get(ERASURE, [])
        if (
            not isinstance(record_id, str)
            or [a for a, _ in records] != [(record_id,)]
            or [a for a, _ in erasures] != [(record_id,)]
        ):
            report(FindingKind.ACCESS_EVENT, "EraseRecord must write its record and erasure once")
            return
        before = self.records.get(record_id)
        after, erasure = json_value(records[0][1].value), json_value(erasures[0][1].value)
        if not isinstance(after, Mapping) or not isinstance(erasure, Mapping):
            report(FindingKind.ACCESS_EVENT, f"EraseRecord of {record_id} wrote malformed state")
            return
        emitted = tx.action.event if tx.action is not None else None
        problems = check_erasure(
            before,
            after,
            erasure,
            tx=tx,
            tx_id=result.tx_id,
            argument=argument,
            event=(emitted.event_name, json_value(emitted.payload)) if emitted else None,
            department_of=self._approvers().department_of,
        )
        for problem in problems:
            report(FindingKind.ACCESS_EVENT, f"EraseRecord of {record_id}: {problem}")
        self.records[record_id] = after
        subject = str(after.get("subject", ""))
        self.subject_records.setdefault(subject, {})[record_id] = after
        self.erasures[record_id] = erasure
        for key, entry in list(self.record_versions.items()):
            if key[0] == record_id:
                self.record_versions[key] = replace(entry, erasure=erasure)

    # -- access events -----------------------------------------------------------------

    def _event(
        self,
        number: int,
        result: TxResult,
        tx: ParsedTransaction,
        function: str,
        argument: Any,
        attributes: tuple[str, ...],
        write: StateWrite,
        report: Report,
    ) -> None:
        if write.value is None:
            report(FindingKind.ACCESS_EVENT, f"access event {attributes} was deleted")
            return
        try:
            event = AccessEvent.from_state(write.value, block=number, tx_index=result.index)
        except EventFormatError as exc:
            report(FindingKind.ACCESS_EVENT, f"malformed access event: {exc}")
            return
        if attributes != (event.event_id,):
            report(FindingKind.ACCESS_EVENT, f"event {event.event_id} stored under {attributes}")
        earlier = self.events.get(event.event_id)
        if function == "RequestAccess":
            if earlier is not None:
                report(FindingKind.ACCESS_EVENT, f"event {event.event_id} was written twice")
            self.stats.events += 1
            context = DecisionInputs(
                tx=tx,
                argument=argument,
                anchored=self.current,
                departments={d.msp_id: d.org for d in self.departments.values()},
                records=self.records,
                subject_records=self.subject_records.get(event.subject, {}),
                consents=self.consents.get(event.subject, {}),
            )
            emitted = tx.action.event if tx.action is not None else None
            if (
                emitted is None
                or emitted.event_name != "AccessDecided"
                or json_value(emitted.payload) != json_value(write.value)
            ):
                report(
                    FindingKind.ACCESS_EVENT,
                    f"event {event.event_id}: the AccessDecided chaincode event differs from the "
                    "stored access event",
                )
            for kind, message in recheck_access(event, context):
                report(kind, f"event {event.event_id}: {message}")
            self.stats.decisions_rechecked += len(event.records)
            self.events[event.event_id] = event
            officer = (event.officer.msp_id, event.officer.cert_fingerprint)
            self.officer_certificates.setdefault(officer, tx.creator_id_bytes)
            return
        if earlier is None:
            report(FindingKind.ACCESS_EVENT, f"{function} rewrote unknown event {event.event_id}")
            return
        if earlier.decision_part() != event.decision_part():
            report(
                FindingKind.ACCESS_EVENT,
                f"{function} changed the decision of event {event.event_id}, not only its review",
            )
        self.stats.reviews += function == "ReviewAccess"
        self.events[event.event_id] = earlier.with_review(event.review, event.raw)
