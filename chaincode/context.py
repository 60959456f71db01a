"""Per-transaction context handed to every contract function.

:class:`Tx` bundles the :class:`~chaincode.ledger.Ledger` with the two facts
almost every function needs, each loaded at most once per transaction: the
pinned :class:`~chaincode.caller.LedgerConfig` and the validated
:class:`~chaincode.caller.Caller`. The configuration is parsed once per
distinct stored value (cached by its bytes), since parsing certificates is the
expensive part and the value changes only at ``InitLedger``.
"""

from __future__ import annotations

import json
from functools import lru_cache

from chaincode.caller import Caller, LedgerConfig, identify
from chaincode.errors import NotInitialised
from chaincode.ledger import CONFIG_KEY, Ledger


@lru_cache(maxsize=4)
def _parse_config(data: bytes) -> LedgerConfig:
    return LedgerConfig.from_dict(json.loads(data))


class Tx:
    """One transaction: ledger access plus the lazily loaded config and caller."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._config: LedgerConfig | None = None
        self._caller: Caller | None = None

    async def config(self) -> LedgerConfig:
        """The departments pinned by ``InitLedger``; raises ``ledger_not_initialised``."""
        if self._config is None:
            data = await self.ledger.get(CONFIG_KEY)
            if data is None:
                raise NotInitialised("the ledger has not been initialised (InitLedger)")
            self._config = _parse_config(data)
        return self._config

    async def caller(self) -> Caller:
        """The transaction's creator, validated against its department's pinned root CA."""
        if self._caller is None:
            config = await self.config()
            msp_id, id_bytes = self.ledger.creator()
            self._caller = identify(config, msp_id, id_bytes, now=self.ledger.now)
        return self._caller
