"""The policy bundle anchored on the ledger, as the gateway reads it.

The gateway validates and tiers records with the catalogue of the *anchored*
bundle -- the one the contract and every department use -- never a local
copy, and decides who may read the raw ledger with its Cedar policy set.
The bundle is parsed once per bundle hash; its stored bytes must hash to the
anchored hash (a tampered state value is refused, as in the contract).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from chaincode.ledger import POLICY_BUNDLE, POLICY_KEY, sequence_key
from gateway.errors import GatewayError
from gateway.service.ledger import LedgerClient, composite_key
from policies.bundle import PolicyBundle


@dataclass(frozen=True)
class Anchored:
    """The anchored policy: version, bundle hash, bundle."""

    version: int
    bundle_hash: str
    bundle: PolicyBundle


class PolicyCache:
    """Reads the anchored bundle from committed state, parsing each version once."""

    def __init__(self, ledger: LedgerClient) -> None:
        self.ledger = ledger
        self._cached: Anchored | None = None
        self._lock = threading.Lock()

    def current(self) -> Anchored:
        """The policy in force now; ``503 policy_not_installed`` before the first install."""
        pointer = self.ledger.state(POLICY_KEY)
        if pointer is None:
            raise GatewayError(
                "no policy bundle is anchored on the ledger yet",
                code="policy_not_installed",
                status=503,
            )
        meta = json.loads(pointer)
        version, bundle_hash = int(meta["version"]), str(meta["bundle_hash"])
        with self._lock:
            cached = self._cached
        if cached is not None and (cached.version, cached.bundle_hash) == (version, bundle_hash):
            return cached
        data = self.ledger.state(composite_key(POLICY_BUNDLE, sequence_key(version)))
        if data is None or hashlib.sha256(data).hexdigest() != bundle_hash:
            raise GatewayError(
                f"the anchored policy bundle v{version} is missing or altered",
                code="policy_tampered",
                status=503,
            )
        anchored = Anchored(version, bundle_hash, PolicyBundle.from_dict(json.loads(data)))
        with self._lock:
            self._cached = anchored
        return anchored
