"""The gateway service: the embedded network, stores, custodians and the transaction flows.

:class:`GatewayService` is what the routes talk to. It owns

* the ledger (:class:`~gateway.service.ledger.LedgerClient` over the home's
  :class:`~network.engine.network.EmbeddedNetwork`) and the anchored policy;
* the departments' off-chain stores and key custodians;
* caller authentication (trust store of the consortium's CAs, a SQLite nonce
  cache under ``HOME/gateway/``) and the per-identity rate limiter;
* prepared transactions waiting for their creator's signature.

and implements the two legs of every write (``docs/api.md``): :meth:`propose`
(check, endorse, hold) and :meth:`commit` (verify the signature, order, wait,
and for an access request release the granted keys).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaincode import CHAINCODE_NAME, AccessLedgerChaincode
from chaincode.codec import format_time
from crypto.consortium import Consortium
from crypto.errors import DecryptionError
from crypto.identity import Identity
from gateway.auth import RequestVerifier, SqliteNonceCache, TrustStore, VerifierPolicy
from gateway.custodian import Custodians
from gateway.custodian_keys import Sealing
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.schemas import (
    AccessResult,
    CommittedTransaction,
    LedgerInfo,
    PolicyRef,
    PreparedTransaction,
)
from gateway.service.access import access_result
from gateway.service.bootstrap import bootstrap_ledger
from gateway.service.erasure import cancel_shred_retries, reconcile_erasures
from gateway.service.ledger import LedgerClient
from gateway.service.limits import RateLimiter
from gateway.service.membership import ChannelMembership
from gateway.service.notereleases import NoteOpener
from gateway.service.notes import NOTES_ORG
from gateway.service.policy import PolicyCache
from gateway.service.queries import QueryService
from gateway.service.records import RecordService
from gateway.service.releases import NOTE_RELEASE_FORMAT, ReleaseLog, note_release_log_path
from gateway.service.transactions import (
    PendingTransaction,
    PendingTransactions,
    check_proposal,
    check_transaction_signature,
    decode_base64,
    proposal_argument,
)
from gateway.settings import GatewaySettings
from gateway.store import StoreError, StoreRegistry, TierKeyEntry
from network.engine.network import EmbeddedNetwork
from network.engine.proposal import Proposal
from network.engine.simulation_pool import SimulationPool
from network.fabric.validator import ChannelConfig

Clock = Callable[[], datetime]
#: Runs before endorsement with the checked proposal and its argument (may refuse).
BeforeEndorse = Callable[[Proposal, dict[str, Any]], None]
#: Runs after a successful endorsement (e.g. to store off-chain text).
AfterEndorse = Callable[[PendingTransaction], Awaitable[None]]

ACCESS_FUNCTION = "RequestAccess"
logger = logging.getLogger("accessledger.gateway")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def department_orgs(consortium: Consortium) -> list[str]:
    """The departments of the home (every organisation but the orderer's)."""
    return [org.name for org in consortium.orgs() if not org.is_orderer]


class GatewayService:
    """Everything behind the routes (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        network: EmbeddedNetwork,
        consortium: Consortium,
        clock: Clock = _utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.home = Path(settings.home)
        self.network = network
        self.ledger = LedgerClient(network, commit_timeout=settings.commit_timeout_seconds)
        self.policy = PolicyCache(self.ledger)
        orgs = department_orgs(consortium)
        self.stores = StoreRegistry(self.home, urls=settings.store_urls, orgs=orgs)
        custodian_keys = {org: consortium.custodian_key(org) for org in orgs}
        self.custodians = Custodians(
            home=self.home,
            custodian_keys=custodian_keys,
            stores=self.stores,
            ledger=self.ledger,
            grant_ttl=settings.grant_ttl,
            max_skew=settings.max_clock_skew,
            now=clock(),
        )
        self.records = RecordService(
            ledger=self.ledger,
            policy=self.policy,
            stores=self.stores,
            sealing=self.custodians.sealing,
            consortium_secret=consortium.consortium_secret(),
        )
        self.queries = QueryService(self.ledger, self.policy)
        #: Note keys the Audit custodian seals on demand to citizens are logged here first.
        self.note_releases = ReleaseLog(
            note_release_log_path(self.home, NOTES_ORG), line_format=NOTE_RELEASE_FORMAT
        )
        self.pending = PendingTransactions(
            ttl=settings.pending_ttl, capacity=settings.max_pending_transactions
        )
        nonce_path = self.home / "gateway" / "nonces.sqlite"
        nonce_path.parent.mkdir(parents=True, exist_ok=True)
        self.nonces = SqliteNonceCache(nonce_path)
        self.verifier = RequestVerifier(
            trust=TrustStore.from_consortium(consortium),
            nonces=self.nonces,
            policy=VerifierPolicy(max_skew=settings.max_clock_skew),
        )
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.revoked = frozenset(settings.revoked_fingerprints)
        self.membership = ChannelMembership(network.channel)
        network.add_config_listener(self._config_committed)

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: GatewaySettings,
        *,
        clock: Clock = _utc_now,
        metrics: Metrics | None = None,
    ) -> GatewayService:
        """Open the home's network on the running event loop, bootstrap it, build the service."""
        home = Path(settings.home)
        network = EmbeddedNetwork.open(home, chaincodes={CHAINCODE_NAME: AccessLedgerChaincode})
        try:
            if settings.simulation_workers:
                pool = SimulationPool(
                    network.store.path,
                    network.endorser.chaincodes,
                    workers=settings.simulation_workers,
                )
                network.endorser.use_simulation_pool(pool)
                await asyncio.to_thread(pool.warm_up)
            if settings.bootstrap:
                await bootstrap_ledger(
                    LedgerClient(network, commit_timeout=settings.commit_timeout_seconds),
                    Consortium.load(home),
                )
            consortium = Consortium.load(home, public_only=True)
            service = cls(
                settings=settings,
                network=network,
                consortium=consortium,
                clock=clock,
                metrics=metrics,
            )
            # A crash between an EraseRecord commit and its crypto-shredding is finished here,
            # before the first request can ask for those keys.
            await reconcile_erasures(service.ledger, service.stores)
            return service
        except BaseException:
            await network.aclose()
            raise

    @property
    def note_sealing(self) -> Sealing | None:
        """How free text is sealed to the Audit custodian (``None`` without an Audit department)."""
        return self.custodians.sealing if self.custodians.has_custodian(NOTES_ORG) else None

    @property
    def note_opener(self) -> NoteOpener | None:
        """The Audit custodian for citizens' note reads (``None`` without one).

        It opens stored note keys; each key it seals on demand is logged to
        :attr:`note_releases` before it leaves (:mod:`gateway.service.notes`).
        """
        if not self.custodians.has_custodian(NOTES_ORG):
            return None
        custodian = self.custodians.custodian(NOTES_ORG)

        def open_note_key(entry: TierKeyEntry) -> bytes:
            try:
                return custodian.open_stored(entry)
            except (DecryptionError, StoreError) as exc:
                raise GatewayError(
                    f"the {NOTES_ORG} custodian cannot open the key of note {entry.record_id}",
                    code="custodian_failed",
                    status=500,
                ) from exc

        return NoteOpener(open_note_key, self.note_releases)

    def _config_committed(self, channel: ChannelConfig) -> None:
        """A config block was committed: follow its members, CRLs and new departments."""
        self.membership.update(channel)
        consortium = Consortium.load(self.home, public_only=True)
        members = self.membership.msp_ids
        for org in department_orgs(consortium):
            info = consortium.org(org)
            if info.msp_id not in members or self.stores.knows(org):
                continue
            key = consortium.custodian_key(org)
            self.stores.add_org(org)
            self.custodians.add(org, key)
            logger.info("department %s joined the channel (config %d)", org, channel.sequence)
        self.verifier.trust = TrustStore.from_consortium(consortium)

    async def aclose(self) -> None:
        """Commit what is in flight, then close the network, the stores and the nonce cache."""
        cancel_shred_retries(self.ledger)  # the next start's reconcile finishes them
        await self.network.aclose()
        cancel_shred_retries(self.ledger)  # any the last commits started
        self.stores.close()
        self.nonces.close()

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # -- facts -------------------------------------------------------------------------------

    def ledger_info(self) -> LedgerInfo:
        try:
            anchored = self.policy.current()
            policy: PolicyRef | None = PolicyRef(
                version=anchored.version, bundle_hash=anchored.bundle_hash
            )
        except GatewayError:
            policy = None
        return LedgerInfo(
            channel=self.ledger.channel,
            chaincode=self.ledger.chaincode,
            height=self.ledger.height,
            tip_hash=self.ledger.tip_hash.hex(),
            policy=policy,
            grant_ttl_seconds=self.settings.grant_ttl_seconds,
            max_clock_skew_seconds=self.settings.max_clock_skew_seconds,
            pending_ttl_seconds=self.settings.pending_ttl_seconds,
        )

    # -- leg 1: propose ------------------------------------------------------------------------

    async def propose(
        self,
        caller: Identity,
        encoded: str,
        functions: Collection[str],
        *,
        before: BeforeEndorse | None = None,
        after: AfterEndorse | None = None,
    ) -> PreparedTransaction:
        """Check a caller-signed proposal for one of ``functions``, endorse it, hold it."""
        now = self.now()
        proposal = check_proposal(
            encoded,
            caller=caller,
            channel=self.ledger.channel,
            chaincode=self.ledger.chaincode,
            functions=functions,
            now=now,
            max_skew=self.settings.max_clock_skew,
        )
        argument = proposal_argument(proposal)
        if before is not None:
            before(proposal, argument)
        endorsement = await self.ledger.endorse(proposal)
        function = proposal.args[0].decode("utf-8")
        pending = self.pending.add(
            function=function, creator=caller, endorsement=endorsement, argument=argument, now=now
        )
        if after is not None:
            await after(pending)
        payload = pending.transaction.payload_bytes
        return PreparedTransaction(
            tx_id=pending.tx_id,
            function=function,
            transaction=base64.b64encode(payload).decode("ascii"),
            transaction_sha256=hashlib.sha256(payload).hexdigest(),
            endorsed_by=list(endorsement.endorsers),
            expires_at=format_time(pending.expires_at),
        )

    # -- leg 2: commit ---------------------------------------------------------------------------

    async def commit(
        self, caller: Identity, tx_id: str, signature: str, *, include_ciphertexts: bool = False
    ) -> CommittedTransaction:
        """Verify the creator's signature, order the transaction, wait for its block."""
        pending = self.pending.take(tx_id, caller, self.now())
        try:
            transaction = check_transaction_signature(
                pending, decode_base64(signature, "signature")
            )
        except GatewayError:
            self.pending.restore(pending)
            raise
        function = pending.function
        self.metrics.submitted.labels(function).inc()
        try:
            committed = await self.ledger.commit(transaction)
        except GatewayError as exc:
            if exc.code == "commit_invalid":
                code = str(exc.extensions.get("validation_code", "INVALID"))
                self.metrics.committed.labels(function, code).inc()
            raise
        self.metrics.committed.labels(function, committed.validation_code_name).inc()
        payload = pending.endorsement.payload
        result = json.loads(payload) if payload else {}
        access = None
        if function == ACCESS_FUNCTION:
            access = await self.access(caller, tx_id, include_ciphertexts=include_ciphertexts)
            self.metrics.decisions.labels(access.decision).inc()
        return CommittedTransaction(
            tx_id=tx_id,
            function=function,
            block_number=committed.block_number,
            validation_code="VALID",
            result=result if isinstance(result, dict) else {"value": result},
            access=access,
        )

    async def access(
        self, caller: Identity, tx_id: str, *, include_ciphertexts: bool = False
    ) -> AccessResult:
        """Verify the caller's committed access event and release its granted keys."""
        now = self.now()

        def verify_and_release() -> AccessResult:
            grant = self.custodians.verify(tx_id, caller, now)
            return access_result(
                self.custodians, grant, now=now, include_ciphertexts=include_ciphertexts
            )

        # Re-verifying the committed event and releasing keys is CPU and SQLite work:
        # off the event loop, which keeps serving other requests meanwhile.
        result = await asyncio.to_thread(verify_and_release)
        for record in result.grants:
            if record.tiers:
                self.metrics.key_releases.labels(record.owner_org).inc(len(record.tiers))
        return result

    def blob(self, caller: Identity, address: str) -> bytes:
        """A ciphertext the caller holds a live grant for."""
        return self.custodians.blob(address, caller, self.now())
