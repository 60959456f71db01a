"""Independent replay and verification of an AccessLedger (or any Fabric) ledger.

An auditor verifies the whole history from the blocks alone: ``audit``
depends on ``network`` (block parsing, Fabric's validation rules),
``policies`` and ``crypto``, never on ``gateway`` or ``chaincode``.

* :mod:`audit.verifier` -- the pure core: :class:`~audit.verifier.LedgerVerifier`
  takes blocks one by one and collects :class:`~audit.findings.Finding` objects;
* :mod:`audit.accessledger`, :mod:`audit.decisions`, :mod:`audit.events` --
  AccessLedger's namespace: policy governance, records, and every access
  decision re-evaluated under the policy anchored at its height;
  :mod:`audit.namespace` names its keys and who may write each,
  :mod:`audit.approvals` re-checks governance approvals;
* :mod:`audit.signatures`, :mod:`audit.pipeline` -- signatures verified ahead
  in worker processes;
* :mod:`audit.sources`, :mod:`audit.replay`, :mod:`audit.report` -- the I/O
  shell: export files, a home's engine store, a gateway stream; the report;
* :mod:`audit.state`, :mod:`audit.offchain`, :mod:`audit.keyreleases` --
  engine state, off-chain ciphertexts and key releases against the ledger;
* :mod:`audit.anomalies`, :mod:`audit.exports` -- anomaly flags; FHIR R4 and
  CSV exports of access events;
* :mod:`audit.generate`, :mod:`audit.bench` -- large signed ledgers and the
  replay benchmark.

See docs/audit.md.
"""
