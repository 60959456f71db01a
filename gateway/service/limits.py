"""Per-identity rate limiting: a token bucket per certificate key id.

Each identity may make ``per_minute`` requests per minute on average, with
bursts up to the same number. The bucket refills continuously; a refused
request is told how many seconds until the next token (``Retry-After``).
Buckets live in memory: a restart forgives everyone, which is acceptable for
a limit whose purpose is fairness and overload protection, not security.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by identity (see the module docstring)."""

    def __init__(self, per_minute: int, *, max_identities: int = 100_000) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.max_identities = max_identities
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def acquire(self, key: str, now: float) -> int | None:
        """Take a token for ``key`` at monotonic time ``now``; ``None`` if allowed,
        else the whole seconds to wait."""
        if not self.enabled:
            return None
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_identities:
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
            bucket.tokens = min(
                float(self.per_minute), bucket.tokens + (now - bucket.updated) * self.rate
            )
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))
