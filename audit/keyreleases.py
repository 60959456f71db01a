"""Key releases traced to committed, permitting access events (invariant I2).

A department's key custodian re-seals tier keys to an officer only against a
committed, valid access event that granted those records and tiers to that
officer, and appends each release, before the key leaves, to
``HOME/custodians/<Org>/releases.jsonl`` (format ``accessledger-key-release/1``,
docs/api.md)::

    {"format": "accessledger-key-release/1", "released_at": "...Z",
     "org": "PublicSecurity", "tx_id": "<access event's transaction>", "block_number": 44,
     "record_id": "rp-1", "version": 1, "tier": "T1", "content_address": "<sha256>",
     "officer_msp_id": "EducationMSP", "officer_fingerprint": "<sha256 of cert DER>",
     "recipient_key_sha256": "<sha256 of the X25519 public key>", "expires_at": "...Z"}

For every line the auditor requires, from the replayed ledger alone: the
transaction is a committed, valid ``RequestAccess`` in that block; its event
is the officer's and granted that record, at that version, releasing that
tier; the custodian is the record's owning department; the content address is
the one the ledger's record version names for that tier; the key was sealed
to the X25519 key the officer had registered on the ledger at release time;
and the release falls between the decision and ``expires_at``. A line that
records the ``ledger_height`` the custodian checked against is also held to
that state: its record not erased there, and the officer's certificate not
revoked by a CRL in the channel config in force there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from cryptography import x509

from audit.errors import AuditInputError
from audit.events import AccessEvent, EventFormatError, parse_ledger_time
from audit.findings import Finding, FindingKind
from audit.namespace import EncryptionKey, RecordVersion
from network.fabric.msp import MSPRegistry

RELEASE_FORMAT: Final = "accessledger-key-release/1"
T = TypeVar("T")
_TEXT_FIELDS: Final = (
    "org", "tx_id", "record_id", "tier", "content_address", "officer_msp_id",
    "officer_fingerprint", "recipient_key_sha256",
)  # fmt: skip


@dataclass(frozen=True)
class KeyRelease:
    """One line of a key-release log."""

    line: int
    released_at: datetime
    expires_at: datetime
    org: str
    tx_id: str
    block_number: int
    record_id: str
    version: int
    tier: str
    content_address: str
    officer_msp_id: str
    officer_fingerprint: str
    recipient_key_sha256: str
    #: Height of the committed state the custodian checked (absent in older logs).
    ledger_height: int | None = None

    @classmethod
    def from_dict(cls, data: Any, line: int) -> KeyRelease:
        if not isinstance(data, Mapping) or data.get("format") != RELEASE_FORMAT:
            raise EventFormatError(f"not a {RELEASE_FORMAT} object")
        missing = [n for n in _TEXT_FIELDS if not isinstance(data.get(n), str)]
        if missing:
            raise EventFormatError(f"lacks text field(s) {', '.join(missing)}")
        numbers = {n: data.get(n) for n in ("block_number", "version")}
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers.values()):
            raise EventFormatError("block_number and version must be integers")
        height = data.get("ledger_height")
        if height is not None and (not isinstance(height, int) or isinstance(height, bool)):
            raise EventFormatError("ledger_height must be an integer")
        return cls(
            line=line,
            released_at=parse_ledger_time(data.get("released_at"), "released_at"),
            expires_at=parse_ledger_time(data.get("expires_at"), "expires_at"),
            block_number=int(data["block_number"]),
            version=int(data["version"]),
            ledger_height=height,
            **{n: str(data[n]) for n in _TEXT_FIELDS},
        )


def read_log(
    path: Path, what: str, parse: Callable[[Any, int], T]
) -> Iterator[T | tuple[int, str]]:
    """``parse(object, line number)`` of each non-blank JSON line of a release log.

    A line that is not JSON, or that ``parse`` refuses (``ValueError``), comes
    out as ``(line number, problem)``; a log that cannot be read at all raises.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"cannot read {what} {path}: {exc}") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            yield number, "is not JSON"
            continue
        try:
            yield parse(data, number)
        except ValueError as exc:
            yield number, str(exc)


def require_log(path: Path, what: str, log_format: str) -> None:
    """Refuse, as an input error, a file given as a ``log_format`` log that is not one at all.

    A log the auditor names must be readable and hold at least one line that
    is a JSON object of ``log_format`` (or no line: a log with no releases).
    A damaged line in a real log stays a finding -- it may be tampering --
    but a file of which no line is a release (another log, a payload, a
    report) says nothing about the ledger: reporting it as untraced releases
    would blame the ledger for the auditor's typo.
    """
    seen_line = False
    try:
        with path.open(encoding="utf-8") as stream:
            for text in stream:
                if not text.strip():
                    continue
                seen_line = True
                try:
                    data = json.loads(text)
                except (ValueError, RecursionError):
                    continue
                if isinstance(data, dict) and data.get("format") == log_format:
                    return
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise AuditInputError(f"cannot read {what} {path}: {reason}") from None
    if seen_line:
        raise AuditInputError(f'{path} is not a {what}: no line of it has "format": "{log_format}"')


def read_releases(path: Path) -> Iterator[KeyRelease | tuple[int, str]]:
    """Releases of a log, or ``(line, problem)`` for a line that is not one."""
    return read_log(path, "key-release log", KeyRelease.from_dict)


@dataclass(frozen=True)
class LedgerFacts:
    """What the replay established that releases are checked against."""

    events: Mapping[str, AccessEvent]
    records: Mapping[tuple[str, int], RecordVersion]
    keys: Mapping[tuple[str, str], list[EncryptionKey]]
    #: Block of each committed ``EraseRecord``, by record id.
    erasure_blocks: Mapping[str, int] = field(default_factory=dict)
    #: ``(first height it governs, channel MSPs)`` of every config block, oldest first.
    msp_history: Sequence[tuple[int, MSPRegistry]] = ()
    #: The certificate (PEM) each officer asked with, by ``(msp_id, cert_fingerprint)``.
    officer_certificates: Mapping[tuple[str, str], bytes] = field(default_factory=dict)


def _problem(release: KeyRelease, facts: LedgerFacts) -> str | None:
    event = facts.events.get(release.tx_id)
    if event is None:
        return "names no committed, valid access event"
    if event.block != release.block_number:
        return f"names block {release.block_number}, the event is in block {event.block}"
    officer = event.officer
    if (officer.msp_id, officer.cert_fingerprint) != (
        release.officer_msp_id,
        release.officer_fingerprint,
    ):
        return "was released to another officer than the one who asked"
    revoked = _after_revocation(release, facts)
    if revoked is not None:
        return revoked
    entry = next((r for r in event.granted if r.record_id == release.record_id), None)
    if entry is None:
        return f"record {release.record_id} was not granted by the event ({event.decision})"
    if entry.version != release.version:
        return f"record {release.record_id} v{release.version} released, v{entry.version} granted"
    if release.tier not in entry.tiers:
        return f"tier {release.tier} released, the event granted {list(entry.tiers)}"
    record = facts.records.get((release.record_id, release.version))
    if record is None or record.record.get("owner_org") != release.org:
        return f"the {release.org} custodian does not own record {release.record_id}"
    if record.content_addresses().get(release.tier) != release.content_address:
        return "the released key opens a ciphertext other than the one the ledger names"
    erased = _after_erasure(release, record, facts)
    if erased is not None:
        return erased
    if not release.released_at >= event.decided_at:
        return "was released before the access was decided"
    if not release.released_at < release.expires_at:
        return "was released after the grant expired"
    registered = [
        k for k in facts.keys.get((officer.msp_id, officer.cert_fingerprint), [])
        if k.registered_at <= release.released_at
    ]  # fmt: skip
    if not registered or registered[-1].sha256 != release.recipient_key_sha256:
        return "was sealed to a key the officer had not registered on the ledger"
    return None


def _after_revocation(release: KeyRelease, facts: LedgerFacts) -> str | None:
    """Why a release went to a certificate revoked in the state the custodian checked, if so.

    Only a log line with ``ledger_height`` can be judged: it names the state
    the custodian read, so the CRLs in force there are known exactly.
    """
    if release.ledger_height is None:
        return None
    pem = facts.officer_certificates.get((release.officer_msp_id, release.officer_fingerprint))
    if pem is None:
        return None  # no access event of this officer: reported as such already
    return revocation_at(facts.msp_history, release.officer_msp_id, pem, release.ledger_height)


def revocation_at(
    msp_history: Sequence[tuple[int, MSPRegistry]], msp_id: str, pem: bytes, height: int
) -> str | None:
    """Why a release at ``height`` went to a certificate the channel had revoked, if it did.

    ``msp_history`` pairs each replayed config's first height with its MSPs;
    the config in force at ``height`` (that of the last config block below
    it) decides, with its CRLs. Shared by the key- and note-release tracers.
    """
    in_force: tuple[int, MSPRegistry] | None = None
    for start, candidate in msp_history:
        if start > height:
            break
        in_force = (start, candidate)
    if in_force is None:
        return None  # no config replayed below that height: nothing to judge it against
    since, registry = in_force
    msp = registry.msps.get(msp_id)
    if msp is not None and not msp.revokes(certificate_from_pem(pem)):
        return None
    return (
        f"was released to a certificate revoked on the channel (config block {since - 1},"
        f" in force at ledger height {height})"
    )


@functools.lru_cache(maxsize=1024)
def certificate_from_pem(pem: bytes) -> x509.Certificate:
    """A parsed certificate (cached: the same few officers' certificates recur on every line)."""
    return x509.load_pem_x509_certificate(pem)


def _after_erasure(release: KeyRelease, record: RecordVersion, facts: LedgerFacts) -> str | None:
    """Why a release came after its record's committed erasure, if it did.

    With the log's ``ledger_height``: the erasure's block was already in the
    state the custodian checked. Without it (older logs), by time: released
    at or after the erasure's transaction time.
    """
    if record.erasure is None:
        return None
    tx_id = record.erasure.get("tx_id")
    block = facts.erasure_blocks.get(release.record_id)
    if release.ledger_height is not None and block is not None:
        if release.ledger_height > block:
            return f"was released after the record was erased (block {block}, {tx_id})"
        return None
    try:
        erased_at = parse_ledger_time(record.erasure.get("erased_at"), "erased_at")
    except EventFormatError:
        return "concerns an erased record whose erasure time is unreadable"
    if release.released_at >= erased_at:
        return f"was released after the record was erased ({tx_id})"
    return None


def check_key_releases(path: Path, facts: LedgerFacts) -> tuple[list[Finding], int]:
    """Findings for every release a committed permitting event does not account for."""
    findings = []
    count = 0
    for item in read_releases(path):
        if isinstance(item, tuple):
            line, unreadable = item
            findings.append(Finding(FindingKind.KEY_RELEASE, f"{path} line {line}: {unreadable}"))
            continue
        count += 1
        problem = _problem(item, facts)
        if problem is None:
            continue
        event = facts.events.get(item.tx_id)
        findings.append(
            Finding(
                FindingKind.KEY_RELEASE,
                f"{path} line {item.line}: release of {item.record_id} {item.tier} "
                f"by the {item.org} custodian {problem}",
                block=event.block if event else None,
                tx_index=event.tx_index if event else None,
                tx_id=item.tx_id,
            )
        )
    return findings, count


def custodian_logs(home: Path) -> list[Path]:
    """The custodians' release logs of a home (``HOME/custodians/<Org>/releases.jsonl``)."""
    return sorted((home / "custodians").glob("*/releases.jsonl"))
