"""One writing process per ledger: an exclusive advisory lock next to the ledger file.

SQLite serialises individual transactions, but two engines committing blocks
to the same ledger would each believe they own the chain head and fork it.
The lock makes the second writer fail at open with a clear error instead.
The kernel drops a ``flock`` when its process dies, so a SIGKILL never leaves a
stale lock behind (I6). Readers (``open_ledger``, ``audit replay --home``,
``ledger info``) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from crypto.errors import AccessLedgerError


class LedgerInUseError(AccessLedgerError):
    """Another process has this ledger open for writing."""

    code = "ledger_in_use"


class WriterLock:
    """An exclusive, non-blocking ``flock`` on ``<ledger>.writer.lock``."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.path = ledger.with_name(ledger.name + ".writer.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LedgerInUseError` at once (never waits)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LedgerInUseError(
                f"the ledger {self.ledger} is open for writing by"
                " another process (is `accessledger serve` running on this home? use"
                " --gateway URL to go through it)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
