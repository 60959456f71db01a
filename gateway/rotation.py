"""Custodian key rotation: a new department key, and every stored tier key re-sealed to it.

:func:`rotate_custodian_key` is the operator job behind
``POST /v1/departments/{org}/custodian-key/rotation``:

1. take the department's rotation lock (``HOME/orgs/<Org>/custodian/.rotation.lock``,
   ``flock``; a second rotation of the same department, in this or another
   process, is refused with ``rotation_in_progress``);
2. move the key files to "re-sealing" (:func:`gateway.custodian_keys.begin_rotation`):
   a new key becomes current, the old one is kept as ``x25519.key.previous``;
   the in-memory custodian is told (``on_keys``) so releases keep working;
3. page through the store's tier keys not recorded as sealed to the new key,
   open each with the key its row names (or, for rows written before key
   ids, whichever key opens it), seal it to the new key and swap it in --
   one store transaction per batch, each row compare-and-swapped so an
   erasure or a concurrent run is never undone;
4. when a pass finds nothing left, delete ``x25519.key.previous``.

A ``kill -9`` at any instant leaves every row openable: each row names its
key and both keys stay on disk until step 4. Running the job again resumes
(the same new key, the remaining rows). Erased records have no rows, so they
stay erased. Rows that open with neither key are reported, and the previous
key is then kept.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from crypto.envelope import open_sealed_key, seal_key
from crypto.errors import AccessLedgerError, DecryptionError
from gateway.custodian_keys import (
    CustodianKeyRing,
    begin_rotation,
    custodian_key_path,
    retire_previous,
)
from gateway.store import DepartmentStore, Resealed, ScanPosition, TierKeyEntry

#: Rows re-sealed per store transaction unless told otherwise.
DEFAULT_BATCH_SIZE: Final = 200
#: Most rows one batch may hold (bounds a transaction's size).
MAX_BATCH_SIZE: Final = 10_000
LOCK_FILE: Final = ".rotation.lock"


class RotationInProgress(AccessLedgerError):
    """Another rotation of the same department's custodian key is running."""

    code = "rotation_in_progress"


class RotationIncomplete(AccessLedgerError):
    """Some stored keys open with neither custodian key; the previous key is kept."""

    code = "rotation_incomplete"


@dataclass(frozen=True)
class RotationResult:
    """What one rotation run did."""

    org: str
    old_key_id: str
    new_key_id: str
    #: Rows this run re-sealed to the new key (an interrupted run's rows are not counted).
    resealed: int
    #: True when this run finished a rotation an earlier run had started.
    resumed: bool
    started_at: datetime
    finished_at: datetime


@contextmanager
def rotation_lock(home: Path, org: str) -> Iterator[None]:
    """Hold ``org``'s rotation lock, or raise :class:`RotationInProgress` at once."""
    path = custodian_key_path(home, org).parent / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationInProgress(
                f"the {org} custodian key is already being rotated; try again when it finishes"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _open(entry: TierKeyEntry, ring: CustodianKeyRing) -> tuple[bytes, bytes] | None:
    """``(tier key, private key that opened it)``, or ``None`` if no key of the ring opens it."""
    if entry.key_id is not None:
        private = ring.private_for(entry.key_id)
        keys = [private] if private is not None else []
    else:
        keys = list(ring.candidates())
    for private in keys:
        try:
            return open_sealed_key(entry.sealed_key, private), private
        except DecryptionError:
            continue
    return None


def _reseal_pass(
    store: DepartmentStore,
    ring: CustodianKeyRing,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
    done_before: int,
) -> tuple[int, int]:
    """One pass over the rows not yet sealed to the new key: ``(changed, unopenable)``."""
    changed = 0
    unopenable = 0
    after: ScanPosition | None = None
    while True:
        batch = store.tier_keys_not_sealed_to(ring.current_id, after=after, limit=batch_size)
        if not batch:
            return changed, unopenable
        replacements = []
        for entry in batch:
            opened = _open(entry, ring)
            if opened is None:
                unopenable += 1
                continue
            tier_key, private = opened
            # A legacy row already sealed to the new key only needs its key id recorded.
            sealed = (
                entry.sealed_key
                if private == ring.current
                else seal_key(tier_key, ring.current_public)
            )
            replacements.append(
                Resealed(
                    entry.record_id,
                    entry.version,
                    entry.tier,
                    entry.sealed_key,
                    sealed,
                    ring.current_id,
                )
            )
        if replacements:
            changed += store.replace_sealed_keys(replacements)
        last = batch[-1]
        after = (last.record_id, last.version, last.tier)
        if on_batch is not None:
            on_batch(done_before + changed)


def rotate_custodian_key(
    home: Path,
    org: str,
    store: DepartmentStore,
    *,
    now: Callable[[], datetime],
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_keys: Callable[[CustodianKeyRing], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    finishing: Callable[[], AbstractContextManager[object]] | None = None,
) -> RotationResult:
    """Rotate ``org``'s custodian key and re-seal its whole store (module docstring).

    ``on_keys`` receives the key ring whenever it changes (both keys while
    re-sealing, the new key alone at the end) so a running custodian opens
    every row throughout; ``on_batch`` receives the running count of re-sealed
    rows after each batch (progress, and the crash tests' cue). ``finishing``
    (the custodians' sealing lock of ``org``) is held from the final count of
    rows not yet re-sealed to the deletion of the previous key, so a record
    registered meanwhile cannot be sealed to a key that is about to disappear.
    """
    if isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise AccessLedgerError(
            f"batch size must be between 1 and {MAX_BATCH_SIZE}", code="invalid_batch_size"
        )
    if store.org != org:
        raise AccessLedgerError(f"the store given is {store.org}'s, not {org}'s")
    started_at = now()
    with rotation_lock(home, org):
        ring, resumed = begin_rotation(home, org)
        assert ring.previous_id is not None  # begin_rotation always keeps the old key
        old_key_id = ring.previous_id
        if on_keys is not None:
            on_keys(ring)
        resealed = 0
        while True:
            changed, unopenable = _reseal_pass(store, ring, batch_size, on_batch, resealed)
            resealed += changed
            if changed == 0:
                break  # a pass that changed nothing: only unopenable rows (if any) remain
        with finishing() if finishing is not None else nullcontext():
            # Rows written since the last pass (sealed to the current key by then) are fine;
            # anything else is re-sealed here, under the writers' lock.
            changed, unopenable = _reseal_pass(store, ring, batch_size, on_batch, resealed)
            resealed += changed
            remaining = store.count_tier_keys_not_sealed_to(ring.current_id)
            if remaining or unopenable:
                raise RotationIncomplete(
                    f"{max(remaining, unopenable)} stored key(s) of {org} open with neither the"
                    " current nor the previous custodian key; the previous key is kept"
                )
            retire_previous(home, org)
            final = CustodianKeyRing(ring.current)
            if on_keys is not None:
                on_keys(final)
    return RotationResult(
        org=org,
        old_key_id=old_key_id,
        new_key_id=ring.current_id,
        resealed=resealed,
        resumed=resumed,
        started_at=started_at,
        finished_at=now(),
    )


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "RotationInProgress",
    "RotationIncomplete",
    "RotationResult",
    "rotate_custodian_key",
    "rotation_lock",
]
