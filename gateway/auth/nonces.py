"""Replay protection: remember each nonce for as long as its signature could be accepted.

A signature is accepted only while its ``created`` time is within the allowed
clock skew of now, so a nonce needs remembering only until ``created + skew``
(its ``expires_at``); after that the timestamp check refuses a replay on its
own. Nonces are kept per key id, so one caller can never use up another's.

Two implementations of :class:`NonceCache`:

:class:`MemoryNonceCache`
    a dict with an expiry heap. Fast; forgets everything on restart, so a
    request replayed just after a restart would be accepted again. For tests
    and single-shot tools.
:class:`SqliteNonceCache`
    a SQLite table (WAL). Survives restarts and is shared by every worker
    process on the host that opens the same file. Each accepted nonce costs
    one autocommit ``INSERT ... ON CONFLICT`` (no explicit transaction; expired
    rows are deleted at most once a second). By default it commits with
    ``synchronous=NORMAL``: in WAL mode a commit is then a write into the log
    without an fsync, which survives a process crash (kill -9, the log is in
    the OS page cache) but a power loss or kernel panic may lose the commits of
    the last moments before it. Those nonces have ``created`` within the skew
    of the crash, so after the host boots again a replay is still refused by
    the timestamp check once ``created + skew`` has passed; it is accepted only
    if the gateway is serving again within the skew window (default
    :data:`~gateway.auth.profile.DEFAULT_MAX_SKEW`) of the lost requests. Pass
    ``durable=True`` for ``FULL`` (an fsync per request) where a host can
    reboot and serve in less than that window.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol

from gateway.auth.errors import NonceReusedError

_BUSY_TIMEOUT_MS = 10_000
#: Seconds between deletions of expired rows; in between, an expired row is
#: simply overwritten when its pair is used again.
_PURGE_INTERVAL = 1.0


class NonceCache(Protocol):
    """Where the verifier records the nonces it has accepted."""

    def remember(self, keyid: str, nonce: str, *, expires_at: datetime, now: datetime) -> None:
        """Record ``(keyid, nonce)`` until ``expires_at``; raise ``nonce_reused`` if it is live.

        Must be atomic: of two concurrent calls with the same pair, exactly one
        succeeds.
        """
        ...


def _timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("nonce cache times must be timezone-aware")
    return moment.timestamp()


def _reused(keyid: str) -> NonceReusedError:
    return NonceReusedError(
        f"this nonce was already used by key {keyid[:16]}... within the replay window; "
        "sign every request with a fresh nonce"
    )


class MemoryNonceCache:
    """An in-process :class:`NonceCache`; entries are dropped once expired."""

    def __init__(self) -> None:
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def remember(self, keyid: str, nonce: str, *, expires_at: datetime, now: datetime) -> None:
        """See :meth:`NonceCache.remember`."""
        expires, current = _timestamp(expires_at), _timestamp(now)
        key = (keyid, nonce)
        with self._lock:
            self._purge(current)
            if key in self._expiry:
                raise _reused(keyid)
            self._expiry[key] = expires
            heapq.heappush(self._heap, (expires, key))

    def _purge(self, current: float) -> None:
        while self._heap and self._heap[0][0] <= current:
            expires, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires:
                del self._expiry[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)


class SqliteNonceCache:
    """A :class:`NonceCache` in a SQLite file, so restarts do not reopen the replay window."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._next_purge = float("-inf")
        connection = self._connection
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS nonce ("
            " keyid TEXT NOT NULL, nonce TEXT NOT NULL, expires_at REAL NOT NULL,"
            " PRIMARY KEY (keyid, nonce)) WITHOUT ROWID"
        )
        connection.execute("CREATE INDEX IF NOT EXISTS nonce_expiry ON nonce (expires_at)")

    def remember(self, keyid: str, nonce: str, *, expires_at: datetime, now: datetime) -> None:
        """See :meth:`NonceCache.remember`."""
        expires, current = _timestamp(expires_at), _timestamp(now)
        with self._lock:
            connection = self._connection
            if current >= self._next_purge:
                connection.execute("DELETE FROM nonce WHERE expires_at <= ?", (current,))
                self._next_purge = current + _PURGE_INTERVAL
            # One autocommit statement, hence one write transaction: of two
            # processes racing on the same pair exactly one inserts it. A row
            # left behind by a lazy purge is taken over only once it expired.
            changed = connection.execute(
                "INSERT INTO nonce (keyid, nonce, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (keyid, nonce) DO UPDATE SET expires_at = excluded.expires_at"
                " WHERE nonce.expires_at <= ?",
                (keyid, nonce, expires, current),
            ).rowcount
        if changed != 1:
            raise _reused(keyid)

    def __len__(self) -> int:
        with self._lock:
            row = self._connection.execute("SELECT count(*) FROM nonce").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._connection.close()

    def __enter__(self) -> SqliteNonceCache:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
