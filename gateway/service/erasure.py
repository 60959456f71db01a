"""Crypto-shredding after a committed ``EraseRecord`` (PIPL Art. 44-47).

The ledger decides an erasure (:mod:`chaincode.erasure`); the gateway
carries it out in the owning department's off-chain store by destroying
every version's tier keys and ciphertexts (:meth:`DepartmentStore.erase_record`,
which leaves a tombstone). The store is shredded only for a record the
*committed* ledger says is erased, and shredding is idempotent, so each of
the three paths below may run any number of times:

* :func:`shred_when_committed` -- the ``DELETE /v1/records/{id}`` route
  registers it right after endorsement. It waits on the network's commit
  notification for that transaction and shreds as soon as the block is
  committed VALID. Its waiter is registered before the committing client's
  own; the committer resolves a transaction's waiters in registration order
  and asyncio runs their callbacks first in, first out, so the shred (one
  store transaction, run synchronously on the event loop) is done before
  the commit answer is sent: a client that saw its erasure committed never
  reads the ciphertext again;
* :func:`reconcile_erasures` -- on gateway start: every record erased on the
  ledger whose store still holds tier keys (the gateway stopped between the
  commit and the shred) is shredded then;
* :func:`shred` -- one record, on demand.

A shred that fails after its commit (a busy or unreachable store) is tried
again in the background (:func:`retry_shred`) instead of waiting for the
next start.

Nothing here raises an internal exception to a caller: store failures
become :class:`~gateway.errors.GatewayError` (``shred_failed``), and the
commit-time path logs them and retries (the next start reconciles what is left).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from chaincode.codec import parse_time
from chaincode.errors import InvalidArgument
from chaincode.ledger import ERASURE
from crypto.errors import AccessLedgerError
from gateway.errors import GatewayError
from gateway.service.ledger import LedgerClient, composite_key
from gateway.store import (
    Erasure,
    RecordErasedError,
    RecordNotFoundError,
    StoreError,
    StoreRegistry,
)
from network.engine.statedb import VALID

#: The chaincode function of an erasure.
ERASE_FUNCTION: Final = "EraseRecord"
#: How long the commit-time shred, which runs on the event loop, waits for a record's lock.
COMMIT_SHRED_LOCK_TIMEOUT_MS: Final = 500
logger = logging.getLogger("accessledger.gateway.erasure")


@dataclass(frozen=True)
class LedgerErasure:
    """A committed erasure as the ledger holds it (``erasure <record_id>``)."""

    record_id: str
    owner_org: str
    tx_id: str
    erased_at: datetime
    erased_by: str

    @classmethod
    def from_state(cls, document: dict[str, Any]) -> LedgerErasure:
        by = document["erased_by"]
        return cls(
            record_id=str(document["record_id"]),
            owner_org=str(document["owner_org"]),
            tx_id=str(document["tx_id"]),
            erased_at=parse_time(document["erased_at"], what="erased_at"),
            erased_by=f"{by['msp_id']}:{by['cert_fingerprint']} (EraseRecord {document['tx_id']})",
        )


def ledger_erasure(ledger: LedgerClient, record_id: str) -> LedgerErasure | None:
    """The committed erasure of ``record_id``, or ``None`` if the ledger has not erased it."""
    document = ledger.state_json(ERASURE, record_id)
    if document is None:
        return None
    return _parse(document)


def _parse(document: dict[str, Any]) -> LedgerErasure:
    try:
        return LedgerErasure.from_state(document)
    except (KeyError, TypeError, InvalidArgument) as exc:
        raise GatewayError(
            "the ledger's erasure entry is malformed", code="ledger_state_invalid", status=500
        ) from exc


def ledger_erasures(ledger: LedgerClient) -> list[LedgerErasure]:
    """Every committed erasure, from one consistent snapshot, in record id order."""
    start = composite_key(ERASURE)
    end = start[:-1] + "\x01"
    with ledger.network.store.snapshot() as view:
        entries = view.get_state_range(ledger.chaincode, start, end)
    erasures = []
    for entry in entries:
        try:
            document = json.loads(entry.value)
        except ValueError as exc:
            raise GatewayError(
                "the ledger's erasure entry is malformed", code="ledger_state_invalid", status=500
            ) from exc
        erasures.append(_parse(document))
    return erasures


def shred(
    ledger: LedgerClient,
    stores: StoreRegistry,
    record_id: str,
    *,
    lock_timeout_ms: int | None = None,
) -> Erasure | None:
    """Destroy ``record_id``'s key material if the ledger erased it; its tombstone.

    ``None`` when the ledger has not erased the record, or when the owner's
    store never held it (nothing to destroy). Erasing twice returns the first
    tombstone. ``lock_timeout_ms`` bounds the wait for a concurrent writer of
    the record (PostgreSQL stores).
    """
    erasure = ledger_erasure(ledger, record_id)
    if erasure is None:
        return None
    return _shred(stores, erasure, lock_timeout_ms=lock_timeout_ms)


def _shred(
    stores: StoreRegistry, erasure: LedgerErasure, *, lock_timeout_ms: int | None = None
) -> Erasure | None:
    if not stores.knows(erasure.owner_org):
        logger.warning("no store for %s; erasure %s not shredded", erasure.owner_org, erasure.tx_id)
        return None
    try:
        return stores.store(erasure.owner_org).erase_record(
            record_id=erasure.record_id,
            erased_by=erasure.erased_by,
            now=erasure.erased_at,
            lock_timeout_ms=lock_timeout_ms,
        )
    except RecordNotFoundError:
        return None
    except StoreError as exc:
        raise GatewayError(
            f"the {erasure.owner_org} store could not shred record {erasure.record_id}",
            code="shred_failed",
            status=500,
            tx_id=erasure.tx_id,
        ) from exc


def _pending(stores: StoreRegistry, erasure: LedgerErasure) -> bool:
    """Whether the owner's store still holds tier keys of an erased record."""
    if not stores.knows(erasure.owner_org):
        return False
    store = stores.store(erasure.owner_org)
    try:
        return bool(store.list_tier_keys(record_id=erasure.record_id))
    except RecordErasedError:
        return False  # tombstoned: already shredded


async def reconcile_erasures(ledger: LedgerClient, stores: StoreRegistry) -> list[str]:
    """Shred every ledger-erased record whose store still holds key material; their ids.

    Call once when the gateway starts (after its stores are open): it
    finishes erasures whose shred a crash or stop interrupted. A store that
    fails is logged and skipped (the next start retries it); the ids returned
    are the records shredded now.
    """

    def run() -> list[str]:
        shredded = []
        for erasure in ledger_erasures(ledger):
            try:
                if _pending(stores, erasure) and _shred(stores, erasure) is not None:
                    shredded.append(erasure.record_id)
            except (GatewayError, StoreError) as exc:
                # One store failing must not keep the others unshredded; the next start retries.
                logger.error("shredding %s failed: %s", erasure.record_id, exc.code)
        return shredded

    shredded = await asyncio.to_thread(run)
    if shredded:
        logger.info("shredded %d record(s) erased on the ledger before this start", len(shredded))
    return shredded


def shred_when_committed(
    ledger: LedgerClient, stores: StoreRegistry, tx_id: str, record_id: str, *, wait: float
) -> None:
    """Shred ``record_id`` once transaction ``tx_id`` commits VALID (see the module docstring).

    ``wait`` bounds how long an uncommitted transaction is watched (its
    pending lifetime plus the commit timeout); after that the watch is
    dropped and :func:`reconcile_erasures` remains the safety net.
    """
    network = ledger.network
    try:
        waiter = network.commit_waiter(tx_id, check_ledger=False)
    except AccessLedgerError as exc:
        # The network is stopping: the transaction cannot commit through this gateway now,
        # and whatever does commit is shredded by the next start's reconcile.
        logger.warning("not watching erasure %s: %s", tx_id, exc.code)
        return
    loop = asyncio.get_running_loop()
    expiry = loop.call_later(wait, network.forget_waiter, tx_id, waiter)

    def committed(done: asyncio.Future[Any]) -> None:
        expiry.cancel()
        if done.cancelled() or done.exception() is not None:
            return
        if done.result().validation_code != VALID:
            return
        # Synchronously, on the event loop: this runs before the committing client's
        # own waiter resumes, so its commit answer already finds the record shredded.
        try:
            # Briefly: this holds up the event loop; a busy store is left to the retries.
            shred(ledger, stores, record_id, lock_timeout_ms=COMMIT_SHRED_LOCK_TIMEOUT_MS)
        except GatewayError as exc:
            logger.error("shredding %s after %s failed: %s", record_id, tx_id, exc.code)
            retry_shred(ledger, stores, record_id, tx_id)
        except Exception as exc:
            # Type only (I1).
            logger.error(
                "shredding %s after %s failed with %s", record_id, tx_id, type(exc).__name__
            )
            retry_shred(ledger, stores, record_id, tx_id)

    waiter.add_done_callback(committed)


#: Seconds before each further attempt at a shred that failed after its commit.
RETRY_DELAYS: tuple[float, ...] = (1.0, 10.0, 60.0, 600.0)
_retries: weakref.WeakKeyDictionary[LedgerClient, set[asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)


def retry_shred(ledger: LedgerClient, stores: StoreRegistry, record_id: str, tx_id: str) -> None:
    """Try a failed shred again in the background, :data:`RETRY_DELAYS` apart.

    An erasure committed on the ledger must not wait for the next restart
    because its store was busy or briefly unreachable. Each attempt runs in a
    worker thread; the attempts stop when the network stops (the next
    start's reconcile takes over) or :func:`cancel_shred_retries` is called.
    """
    task = asyncio.get_running_loop().create_task(
        _shred_later(ledger, stores, record_id, tx_id), name=f"shred {record_id}"
    )
    tasks = _retries.setdefault(ledger, set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _shred_later(
    ledger: LedgerClient, stores: StoreRegistry, record_id: str, tx_id: str
) -> None:
    for delay in RETRY_DELAYS:
        await asyncio.sleep(delay)
        if not ledger.running():
            return
        try:
            await asyncio.to_thread(shred, ledger, stores, record_id)
        except GatewayError as exc:
            logger.error("retried shred of %s after %s failed: %s", record_id, tx_id, exc.code)
            continue
        except Exception as exc:
            logger.error(
                "retried shred of %s after %s failed with %s", record_id, tx_id, type(exc).__name__
            )
            continue
        logger.info("shredded %s after %s on a retry", record_id, tx_id)
        return
    logger.error("gave up shredding %s after %s; the next start reconciles it", record_id, tx_id)


def cancel_shred_retries(ledger: LedgerClient) -> None:
    """Stop the pending retries of ``ledger``'s shreds (the gateway is closing)."""
    for task in list(_retries.pop(ledger, ())):
        task.cancel()


__all__ = [
    "ERASE_FUNCTION",
    "LedgerErasure",
    "cancel_shred_retries",
    "ledger_erasure",
    "ledger_erasures",
    "reconcile_erasures",
    "retry_shred",
    "shred",
    "shred_when_committed",
]
