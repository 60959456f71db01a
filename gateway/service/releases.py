"""The custodians' key-release log and the blob grants derived from it.

Every tier key a custodian re-seals to an officer is first appended, fsynced,
to ``HOME/custodians/<Org>/releases.jsonl`` (:class:`ReleaseLog`; format in
``docs/api.md``). The same entries say which officer may fetch which
ciphertext until when (:class:`GrantIndex`), which is all
``GET /v1/blobs/{sha256}`` needs; on start the index is rebuilt from the logs,
so a restart neither forgets live grants nor revives expired ones.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from chaincode.codec import parse_time
from crypto.errors import AccessLedgerError
from gateway.errors import Forbidden

RELEASE_FORMAT: Final = "accessledger-key-release/1"
RELEASES_FILE: Final = "releases.jsonl"


class GrantExpired(Forbidden):
    code = "grant_expired"


class GrantRequired(Forbidden):
    code = "grant_required"


class ReleaseLog:
    """The append-only key-release log of one custodian (JSON lines, fsynced).

    Appends are *group-committed*: while one thread writes and fsyncs, others
    queue their lines, and the next writer flushes the whole queue with one
    fsync. Every :meth:`append` still returns only once its own lines are
    durable (or raises if writing them failed).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
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
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileNotFoundError:  # the custodian's directory does not exist yet
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
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
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("format") == RELEASE_FORMAT:
                    yield entry


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
