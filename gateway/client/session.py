"""One identity's session with the gateway, and the caller-signed transaction dance.

:class:`Session` holds what every operation of :mod:`gateway.client.flows`
needs: the identity (which signs; the gateway never holds caller keys), its
X25519 key, the clock, the pseudonymiser, the catalogue and the cached
ledger info. Its :meth:`Session.transact` is the dance, per ``docs/api.md``:
build and sign the proposal locally, ``POST`` it to the resource endpoint,
check that the prepared transaction is this proposal's, sign it, ``POST`` the
signature to ``/v1/transactions/{tx_id}/commit``. A commit the validator
marks as an MVCC or phantom-read conflict changed nothing, so it is proposed
again (with fresh document nonces) up to ``conflict_retries`` times.

It is apart from the operations because it is their one shared mechanism
(sans I/O like them: a :data:`Flow` yields calls and receives answers);
:class:`~gateway.client.flows.Operations` builds every SDK operation on it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from crypto.envelope import x25519_public_key
from crypto.identity import Identity
from gateway.client.errors import ClientError, CommitInvalid, ProtocolError
from gateway.client.http import Call
from gateway.client.models import Committed, LedgerInfo
from gateway.client.proposals import b64, build_proposal, check_prepared, encode_proposal
from gateway.client.subjects import Pseudonymiser, SecretSource
from policies.catalogue import Catalogue

T = TypeVar("T")
#: An operation: yields calls, receives their answers, returns a result.
Flow = Generator[Call, Any, T]
Clock = Callable[[], datetime]

#: Validation codes of a transaction that lost a race and changed nothing: propose again.
RETRYABLE_CODES: Final = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})
GENERIC_ENDPOINT: Final = "/v1/transactions"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Session:
    """One identity's keys, clock and ledger info, and the transaction dance (module docstring)."""

    def __init__(
        self,
        identity: Identity,
        *,
        encryption_key: bytes | None = None,
        secret: SecretSource | None = None,
        catalogue: Catalogue | None = None,
        clock: Clock | None = None,
        conflict_retries: int = 3,
    ) -> None:
        if identity.private_key is None:
            raise ClientError(
                f"identity {identity.name} has no private key here; the SDK signs as its caller",
                code="no_private_key",
            )
        self.identity = identity
        self.encryption_key = encryption_key
        self.public_key = x25519_public_key(encryption_key) if encryption_key else None
        self.clock = clock or _utc_now
        self.conflict_retries = conflict_retries
        self._pseudonymise = Pseudonymiser(secret)
        self._catalogue = catalogue
        self._ledger: LedgerInfo | None = None
        #: The calling citizen's pseudonym, once an operation has learnt it.
        self._subject: str | None = None

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = Catalogue.load_default()
        return self._catalogue

    def pseudonym_of(self, subject: str) -> str:
        """``subject`` as a pseudonym: kept if it is one, else derived from an identity number.

        Deriving needs the consortium secret, which only a client created with
        a ``secret`` source (e.g. from a home holding it) has.
        """
        return self._pseudonymise(subject)

    # -- the ledger and the transaction dance ----------------------------------------------

    def ledger_info(self, *, refresh: bool = False) -> Flow[LedgerInfo]:
        """``GET /v1/ledger`` (cached: the channel and chaincode do not change)."""
        if self._ledger is None or refresh:
            self._ledger = LedgerInfo.from_json((yield Call("GET", "/v1/ledger")))
        return self._ledger

    def transact(
        self,
        path: str,
        function: str,
        make_argument: Callable[[], Mapping[str, Any]],
        *,
        method: str = "POST",
        extra: Mapping[str, Any] | None = None,
        include_ciphertexts: bool = False,
    ) -> Flow[dict[str, Any]]:
        """Propose ``function(make_argument())`` at ``path``, sign, commit; the commit answer."""
        info = yield from self.ledger_info()
        attempt = 0
        while True:
            proposal = build_proposal(
                self.identity,
                channel=info.channel,
                chaincode=info.chaincode,
                function=function,
                argument=make_argument(),
                now=self.now(),
            )
            body = {"proposal": encode_proposal(proposal), **(extra or {})}
            prepared = yield Call(method, path, body=body)
            payload = check_prepared(proposal, prepared)
            commit: dict[str, Any] = {"signature": b64(self.identity.sign(payload))}
            if include_ciphertexts:
                commit["include_ciphertexts"] = True
            try:
                committed = yield Call(
                    "POST", f"/v1/transactions/{proposal.tx_id}/commit", body=commit
                )
            except CommitInvalid as exc:
                if exc.validation_code not in RETRYABLE_CODES or attempt >= self.conflict_retries:
                    raise
                attempt += 1
                continue
            if not isinstance(committed, dict) or committed.get("tx_id") != proposal.tx_id:
                raise ProtocolError(
                    "the commit answer names another transaction", tx_id=proposal.tx_id
                )
            return committed

    def _commit_generic(self, function: str, argument: Mapping[str, Any]) -> Flow[Committed]:
        answer = yield from self.transact(GENERIC_ENDPOINT, function, lambda: argument)
        return Committed.from_json(answer)
