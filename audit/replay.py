"""The audit replay: the I/O shell around the pure verifier.

:func:`replay_ledger` reads a :class:`~audit.sources.BlockSource` from the
genesis block to the tip, pre-verifying signatures in worker processes
(:mod:`audit.pipeline`), feeds every block to a
:class:`~audit.verifier.LedgerVerifier` with the AccessLedger observer
(:mod:`audit.accessledger`), and then runs the checks that need the whole
ledger: the engine's stored state and tip (a home source), an expected tip
hash, the off-chain stores, key-release and note-release logs
(:mod:`audit.notereleases`, whose observer runs beside the AccessLedger
one), and the anomaly detectors.
It returns an :class:`~audit.report.AuditReport`; it raises only when the
audit cannot run at all.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from audit.accessledger import AccessLedgerAudit
from audit.anomalies import AnomalySettings, detect_anomalies
from audit.errors import AuditInputError
from audit.events import AccessEvent
from audit.findings import Finding, FindingKind
from audit.keyreleases import (
    RELEASE_FORMAT,
    LedgerFacts,
    check_key_releases,
    custodian_logs,
    require_log,
)
from audit.notereleases import (
    NOTE_RELEASE_FORMAT,
    NoteFacts,
    check_note_releases,
    note_release_logs,
)
from audit.offchain import check_stores
from audit.pipeline import DEFAULT_CHUNK_BYTES, PipelineStats, prevalidated
from audit.report import AuditReport
from audit.sources import BlockSource, HomeSource, StreamDamagedError, chaincode_name
from audit.state import compare_state
from audit.verifier import LedgerVerifier, VerifierOptions

#: ``(blocks, transactions)`` verified so far.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReplayConfig:
    """Options of one replay (the CLI flags)."""

    chaincode: str | None = None
    extra_chaincodes: tuple[str, ...] = ()
    check_time: bool = True
    workers: int = 0
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    stores: Path | None = None
    key_releases: tuple[Path, ...] = ()
    #: Note-release logs to trace; by default those of a home source.
    note_releases: tuple[Path, ...] = ()
    expected_tip: str | None = None
    anomalies: AnomalySettings = field(default_factory=AnomalySettings)


@dataclass
class ReplayOutcome:
    """The report plus what exports need (the access events, in ledger order)."""

    report: AuditReport
    events: list[AccessEvent]
    channel: str


def check_inputs(config: ReplayConfig) -> None:
    """Refuse malformed auditor inputs before any block is read (``audit_input_invalid``).

    They are not findings: a mistyped ``expected_tip`` or a wrong file given
    as a release log says nothing about the ledger, and must not be reported
    as a ``tip_mismatch`` or as untraced releases.
    """
    tip = config.expected_tip
    if tip is not None and (len(tip) != 64 or any(c not in string.hexdigits for c in tip)):
        raise AuditInputError(
            "the expected tip (--expect-tip) must be a block header hash,"
            f" 64 hexadecimal digits, not {tip[:80]!r}"
        )
    for path in config.key_releases:
        require_log(path, "key-release log", RELEASE_FORMAT)
    for path in config.note_releases:
        require_log(path, "note-release log", NOTE_RELEASE_FORMAT)


def _home_checks(source: HomeSource, verifier: LedgerVerifier, checks: dict[str, str]) -> None:
    if verifier.halted is not None:
        checks["engine state"] = "not compared (replay halted)"
        return
    assert source.snapshot is not None
    findings = compare_state(verifier.state, source.snapshot, verifier.namespaces)
    verifier.findings.extend(findings)
    checks["engine state"] = (
        f"{len(findings)} difference(s)" if findings else "identical to the replayed state"
    )
    if verifier.height:
        stored = source.stored_hash(verifier.height - 1)
        if stored != verifier.tip_hash:
            verifier.findings.append(
                Finding(
                    FindingKind.TIP,
                    "the store's recorded header hash of the last block is not the hash of "
                    "the block it holds",
                    block=verifier.height - 1,
                )
            )


def _note_checks(
    source: BlockSource,
    config: ReplayConfig,
    notes: NoteFacts,
    verifier: LedgerVerifier,
    checks: dict[str, str],
) -> None:
    """Trace every note-release line to the replayed ledger."""
    logs = list(config.note_releases)
    if not logs and isinstance(source, HomeSource):
        logs = note_release_logs(source.ledger.home)
    traced = lines = 0
    for path in logs:
        found, count = check_note_releases(path, notes, height=verifier.height)
        verifier.findings.extend(found)
        traced += count
        lines += count + len(found)
    checks["note releases"] = (
        f"{traced} of {lines} traced from {len(logs)} log(s)"
        if logs
        else "not checked (no note-release logs)"
    )


def replay_ledger(
    source: BlockSource,
    config: ReplayConfig,
    *,
    now: datetime,
    progress: Progress | None = None,
) -> ReplayOutcome:
    """Verify ``source`` from genesis to tip; see the module docstring."""
    check_inputs(config)
    chaincode = chaincode_name(source, config.chaincode)
    observer = AccessLedgerAudit(chaincode)
    notes = NoteFacts(observer)  # after ``observer``: it reads that observer's events
    verifier = LedgerVerifier(
        VerifierOptions(chaincode, config.extra_chaincodes, config.check_time),
        observers=[observer, notes],
    )
    started_at = now
    clock = time.perf_counter()
    checks: dict[str, str] = {}
    pipeline = PipelineStats()
    try:
        for raw in prevalidated(
            source.blocks(),
            verifier.oracle,
            workers=config.workers,
            chunk_bytes=config.chunk_bytes,
            stats=pipeline,
        ):
            verifier.update(raw)
            if progress is not None:
                progress(verifier.stats.blocks, verifier.stats.transactions)
    except StreamDamagedError as exc:
        verifier.findings.append(
            Finding(
                FindingKind.MALFORMED,
                f"after block {verifier.height - 1}: {exc.message}",
                block=verifier.height,
            )
        )
    seconds = time.perf_counter() - clock
    if verifier.height == 0 and not verifier.findings:
        verifier.findings.append(Finding(FindingKind.CHAIN, "the ledger has no blocks"))
    checks["chain, data hashes, orderer signatures"] = (
        f"halted at block {verifier.halted.block}" if verifier.halted else "verified"
    )
    checks["creator and endorsement signatures, policies"] = (
        f"{verifier.stats.signatures} signatures verified, "
        f"{verifier.stats.signatures_verified_ahead} of them ahead by worker processes"
    )
    checks["validation codes"] = "recomputed and compared"
    if isinstance(source, HomeSource):
        _home_checks(source, verifier, checks)
    else:
        checks["engine state"] = "not compared (needs --home)"
    if config.expected_tip is not None and config.expected_tip.lower() != verifier.tip_hash.hex():
        verifier.findings.append(
            Finding(
                FindingKind.TIP,
                f"tip is {verifier.tip_hash.hex()[:16]}… at height {verifier.height}, "
                f"expected {config.expected_tip[:16]}…",
                block=verifier.height - 1 if verifier.height else None,
            )
        )
    events = sorted(observer.events.values(), key=lambda e: (e.block or 0, e.tx_index or 0))
    checks["access decisions"] = (
        f"{observer.stats.events} events, {observer.stats.decisions_rechecked} record decisions "
        f"re-evaluated under {observer.stats.policy_versions} anchored policy version(s) "
        f"(namespace {chaincode})"
    )
    extra: dict[str, object] = {
        "signature_workers": {
            "workers": config.workers,
            "chunks": pipeline.chunks,
            "peak_rss_mb": round(pipeline.worker_peak_rss_kb / 1024, 1),
        }
    }
    if config.stores is not None:
        found, store_stats = check_stores(config.stores, observer.record_versions)
        verifier.findings.extend(found)
        extra["offchain"] = store_stats.to_dict()
        checks["off-chain ciphertexts"] = (
            f"{store_stats.referenced} referenced, {store_stats.blobs} stored, "
            f"{store_stats.erased} erased, {len(found)} problem(s)"
        )
    else:
        checks["off-chain ciphertexts"] = "not checked (needs --stores)"
    logs = list(config.key_releases)
    if not logs and isinstance(source, HomeSource):
        logs = custodian_logs(source.ledger.home)
    facts = LedgerFacts(
        observer.events,
        observer.record_versions,
        observer.keys,
        observer.erasure_blocks,
        observer.msp_history,
        observer.officer_certificates,
    )
    releases = 0
    for path in logs:
        found, count = check_key_releases(path, facts)
        verifier.findings.extend(found)
        releases += count
    checks["key releases"] = (
        f"{releases} traced from {len(logs)} log(s)"
        if logs
        else "not checked (no custodian logs; pass --key-releases)"
    )
    _note_checks(source, config, notes, verifier, checks)
    flags = detect_anomalies(events, config.anomalies, now=now)
    report = AuditReport(
        source=source.description,
        chaincode=chaincode,
        started_at=started_at,
        seconds=seconds,
        stats=verifier.stats,
        height=verifier.height,
        tip_hash=verifier.tip_hash.hex(),
        findings=list(verifier.findings),
        invalid=list(verifier.invalid),
        flags=flags,
        checks=checks,
        access=observer.stats.to_dict(),
        extra={"anomaly_settings": config.anomalies.to_dict(), **extra},
    )
    channel = verifier.channel.channel_id if verifier.channel else ""
    return ReplayOutcome(report, events, channel)
