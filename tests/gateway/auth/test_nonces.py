"""Nonce caches: a nonce is refused while live, forgotten once expired, kept across restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.auth import MemoryNonceCache, NonceCache, NonceReusedError, SqliteNonceCache

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=300)
KEY_A = "a" * 64
KEY_B = "b" * 64
NONCE = "nonce-0123456789abcdef"


@pytest.fixture(params=["memory", "sqlite"])
def make_cache(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], NonceCache]]:
    """Opens the cache under test; for SQLite every call reopens the same file."""
    opened: list[SqliteNonceCache] = []
    memory = MemoryNonceCache()

    def factory() -> NonceCache:
        if request.param == "memory":
            return memory
        cache = SqliteNonceCache(tmp_path / "nonces.sqlite")
        opened.append(cache)
        return cache

    yield factory
    for cache in opened:
        cache.close()


def test_a_live_nonce_is_refused(make_cache: Callable[[], NonceCache]) -> None:
    cache = make_cache()
    cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)
    with pytest.raises(NonceReusedError) as caught:
        cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0 + timedelta(seconds=299))
    assert caught.value.code == "nonce_reused"


def test_nonces_are_per_key(make_cache: Callable[[], NonceCache]) -> None:
    cache = make_cache()
    cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)
    cache.remember(KEY_B, NONCE, expires_at=T0 + WINDOW, now=T0)


def test_an_expired_nonce_is_forgotten(make_cache: Callable[[], NonceCache]) -> None:
    cache = make_cache()
    cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)
    later = T0 + WINDOW
    cache.remember(KEY_A, NONCE, expires_at=later + WINDOW, now=later)
    assert len(cache) == 1  # type: ignore[arg-type]  # both caches define __len__


def test_sqlite_cache_remembers_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite"
    with SqliteNonceCache(path) as cache:
        cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)
    with SqliteNonceCache(path) as reopened:
        with pytest.raises(NonceReusedError):
            reopened.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0 + timedelta(seconds=5))
        assert len(reopened) == 1


def test_two_caches_on_one_file_share_nonces(tmp_path: Path) -> None:
    # Two worker processes on one host open the same file; connections stand in for them.
    path = tmp_path / "nonces.sqlite"
    with SqliteNonceCache(path) as first, SqliteNonceCache(path, durable=True) as second:
        first.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)
        with pytest.raises(NonceReusedError):
            second.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)


def test_concurrent_use_of_one_nonce_succeeds_exactly_once(
    make_cache: Callable[[], NonceCache],
) -> None:
    cache = make_cache()
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0)
            result = "accepted"
        except NonceReusedError:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted"] + ["refused"] * 15


def test_naive_times_are_refused(make_cache: Callable[[], NonceCache]) -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_cache().remember(KEY_A, NONCE, expires_at=datetime(2025, 1, 1), now=T0)


def test_sqlite_expired_row_is_taken_over_before_any_purge(tmp_path: Path) -> None:
    # Expired rows are deleted at most once a second; until then the same pair
    # must still be accepted once expired, and refused while live.
    with SqliteNonceCache(tmp_path / "nonces.sqlite") as cache:
        short = timedelta(milliseconds=500)
        cache.remember(KEY_A, NONCE, expires_at=T0 + short, now=T0)
        with pytest.raises(NonceReusedError):
            cache.remember(KEY_A, NONCE, expires_at=T0 + WINDOW, now=T0 + short / 2)
        later = T0 + short + timedelta(milliseconds=100)
        cache.remember(KEY_A, NONCE, expires_at=later + WINDOW, now=later)
        with pytest.raises(NonceReusedError):
            cache.remember(KEY_A, NONCE, expires_at=later + WINDOW, now=later)
        assert len(cache) == 1
