"""The custodians' release logs and the blob grants derived from the key releases.

Every tier key a custodian re-seals to an officer is first appended, fsynced,
to ``HOME/custodians/<Org>/releases.jsonl`` (:class:`ReleaseLog`; format in
``docs/api.md``). The same entries say which officer may fetch which
ciphertext until when (:class:`GrantIndex`), which is all
``GET /v1/blobs/{sha256}`` needs; on start the index is rebuilt from the logs,
so a restart neither forgets live grants nor revives expired ones.

Every note key the Audit custodian seals on demand to a citizen
(:mod:`gateway.service.notes`) goes, the same way, to
``HOME/custodians/Audit/note-releases.jsonl`` (format
``accessledger-note-release/1``): one :class:`ReleaseLog` per file, told
which format its lines carry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from chaincode.codec import format_time, parse_time
from crypto.errors import AccessLedgerError
from gateway.errors import Forbidden, GatewayError

RELEASE_FORMAT: Final = "accessledger-key-release/1"
RELEASES_FILE: Final = "releases.jsonl"
#: Note keys the Audit custodian sealed on demand to a citizen (docs/api.md).
NOTE_RELEASE_FORMAT: Final = "accessledger-note-release/1"
NOTE_RELEASES_FILE: Final = "note-releases.jsonl"
logger = logging.getLogger("accessledger.gateway")


class GrantExpired(Forbidden):
    code = "grant_expired"


class GrantRequired(Forbidden):
    code = "grant_required"


class ReleaseLog:
    """An append-only release log of one custodian (JSON lines, fsynced).

    ``line_format`` is the format tag its lines carry (key releases by default,
    :data:`NOTE_RELEASE_FORMAT` for note releases); :meth:`entries` yields
    only lines of that format. Appends are *group-committed*: while one
    thread writes and fsyncs, others queue their lines, and the next writer
    flushes the whole queue with one fsync. Every :meth:`append` still
    returns only once its own lines are durable (or raises ``OSError`` if
    writing them failed).
    """

    def __init__(self, path: Path, *, line_format: str = RELEASE_FORMAT) -> None:
        self.path = path
        self.line_format = line_format
        self._cond = threading.Condition()
        self._queue: list[bytes] = []
        self._queued = 0  # sequence number of the last queued batch
        self._durable = 0  # every batch up to this one is on disk
        self._failed: dict[int, BaseException] = {}
        self._writing = False

    def append(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append ``entries`` durably; returns once they are fsynced."""
        if not entries:
            return
        data = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries)
        with self._cond:
            self._queue.append(data.encode("utf-8"))
            self._queued += 1
            mine = self._queued
            while self._durable < mine and mine not in self._failed:
                if self._writing:
                    self._cond.wait()
                    continue
                self._flush_queue()
            error = self._failed.pop(mine, None)
        if error is not None:
            raise error

    def _flush_queue(self) -> None:
        """Write and fsync everything queued (called holding the condition)."""
        batch, self._queue = self._queue, []
        first, last = self._durable + 1, self._queued
        self._writing = True
        self._cond.release()
        error: BaseException | None = None
        try:
            self._write(b"".join(batch))
        except OSError as exc:
            error = exc
        finally:
            self._cond.acquire()
            self._writing = False
        if error is not None:
            for sequence in range(first, last + 1):
                self._failed[sequence] = error
        self._durable = last
        self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT  # read: the last byte, see below
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileNotFoundError:  # the custodian's directory does not exist yet
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o600)
        try:
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":
                # A line cut short by a crash or a failed truncation: end it, so this append
                # starts a line of its own (the cut line stays unreadable, as audit reports).
                data = b"\n" + data
            try:
                view = memoryview(data)
                while view:  # a short write (a nearly full disk) is not an error by itself
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                # Leave no partial line behind: it would corrupt the next line too.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

    def entries(self) -> Iterable[dict[str, Any]]:
        """Every logged release, oldest first (lines that do not parse are skipped)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as stream:
            for line in stream:
                try:
                    entry = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(entry, dict) and entry.get("format") == self.line_format:
                    yield entry


def append_before_release(
    log: ReleaseLog,
    entries: Sequence[Mapping[str, Any]],
    *,
    custodian: str,
    tx_id: str | None = None,
) -> None:
    """Append ``entries`` durably before the keys they record leave, or refuse the release.

    A log that cannot be written (disk full, permissions) must not let a key
    out unrecorded: the caller gets ``503 release_log_failed`` and nothing.
    Only the path and the error type are logged, never the entries.
    """
    try:
        log.append(entries)
    except OSError as exc:
        logger.error("cannot write the release log %s (%s)", log.path, type(exc).__name__)
        raise GatewayError(
            f"the {custodian} custodian could not record this release, so nothing was"
            " released; try again later",
            code="release_log_failed",
            status=503,
            tx_id=tx_id,
        ) from exc


def note_release_entry(
    *,
    event_id: str,
    note_kind: str,
    note_tx_id: str,
    note_hash: str,
    note_record_id: str,
    content_address: str,
    citizen_msp_id: str,
    citizen_fingerprint: str,
    recipient_public: bytes,
    released_at: datetime,
    ledger_height: int,
) -> dict[str, Any]:
    """The note-release log line of one note key sealed on demand to a citizen.

    No personal data: identifiers and hashes the ledger already holds, the
    gateway's clock, and ``ledger_height``, the height of the one committed
    snapshot the release was checked against (the event and its note, the
    citizen's binding, the registered key, the CRLs in force), so an auditor
    can re-check it against exactly that state.
    """
    return {
        "format": NOTE_RELEASE_FORMAT,
        "released_at": format_time(released_at),
        "event_id": event_id,
        "note_kind": note_kind,
        "note_tx_id": note_tx_id,
        "note_hash": note_hash,
        "note_record_id": note_record_id,
        "content_address": content_address,
        "citizen_msp_id": citizen_msp_id,
        "citizen_fingerprint": citizen_fingerprint,
        "recipient_key_sha256": hashlib.sha256(recipient_public).hexdigest(),
        "ledger_height": ledger_height,
    }


@dataclass(frozen=True)
class _BlobGrant:
    org: str
    officer_fingerprint: str
    expires_at: datetime
    record_id: str


@dataclass(frozen=True)
class BlobGrant:
    """The live grant letting an officer fetch a ciphertext: whose store, which record."""

    org: str
    record_id: str


class GrantIndex:
    """Which officer may fetch which ciphertext until when, from the key releases."""

    def __init__(self) -> None:
        self._by_address: dict[str, list[_BlobGrant]] = {}
        self._lock = threading.Lock()

    def add(
        self, address: str, org: str, fingerprint: str, expires_at: datetime, record_id: str
    ) -> None:
        with self._lock:
            grants = self._by_address.setdefault(address, [])
            grants.append(_BlobGrant(org, fingerprint, expires_at, record_id))

    def load(self, entries: Iterable[Mapping[str, Any]], *, now: datetime) -> None:
        """Re-index the releases of a log that are still live at ``now``."""
        for entry in entries:
            try:
                expires_at = parse_time(entry["expires_at"], what="expires_at")
                if expires_at > now:
                    self.add(
                        str(entry["content_address"]),
                        str(entry["org"]),
                        str(entry["officer_fingerprint"]),
                        expires_at,
                        str(entry["record_id"]),
                    )
            except (KeyError, AccessLedgerError):
                continue

    def grant_for(self, address: str, fingerprint: str, now: datetime) -> BlobGrant:
        """Where ``address`` is stored and for which record, if the officer holds a live grant."""
        with self._lock:
            grants = [
                g for g in self._by_address.get(address, ()) if g.officer_fingerprint == fingerprint
            ]
            live = [g for g in grants if now < g.expires_at]
            # Drop what has expired for everyone, so the index does not grow forever.
            remaining = [g for g in self._by_address.get(address, ()) if now < g.expires_at]
            if remaining:
                self._by_address[address] = remaining
            else:
                self._by_address.pop(address, None)
        if live:
            return BlobGrant(live[0].org, live[0].record_id)
        if grants:
            raise GrantExpired("the grant covering this ciphertext has expired")
        raise GrantRequired("no live grant of the caller covers this ciphertext")


def release_log_path(home: Path, org: str) -> Path:
    """``HOME/custodians/<Org>/releases.jsonl``."""
    return Path(home) / "custodians" / org / RELEASES_FILE


def note_release_log_path(home: Path, org: str) -> Path:
    """``HOME/custodians/<Org>/note-releases.jsonl``."""
    return Path(home) / "custodians" / org / NOTE_RELEASES_FILE
