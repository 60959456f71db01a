"""Errors of the embedded engine's pipeline and of its fabric-gateway style client.

A client call fails in exactly one phase, and the error says which, the way
the Fabric Gateway client reports it:

* :class:`EndorseError` -- the proposal was refused (bad signature, unknown
  chaincode, chaincode error response); nothing was sent for ordering;
* :class:`SubmitError` -- the orderer refused the endorsed transaction (or,
  :class:`ConfigUpdateRefusedError`, a channel config update);
* :class:`CommitStatusError` -- the transaction was ordered but its outcome
  could not be obtained (timeout, network closed); it may still commit;
* :class:`CommitError` -- the transaction is in a committed block but was
  invalidated (``validation_code`` says why) and changed nothing.

Every one carries the ``tx_id`` so a caller can look the transaction up later.
"""

from __future__ import annotations

from crypto.errors import AccessLedgerError
from network.fabric.validator import code_name


class EngineError(AccessLedgerError):
    """Base of the embedded engine's errors."""

    code = "engine_error"


class NetworkClosedError(EngineError):
    """The network was closed (or failed) and accepts no more work."""

    code = "network_closed"


class GatewayError(EngineError):
    """A client call failed; ``tx_id`` names the transaction it was about."""

    code = "gateway_error"

    def __init__(self, message: str, *, tx_id: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.tx_id = tx_id


class EndorseError(GatewayError):
    """The proposal was not endorsed; ``status`` is the chaincode's status if it answered."""

    code = "endorse_failed"

    def __init__(self, message: str, *, tx_id: str, status: int | None = None) -> None:
        super().__init__(message, tx_id=tx_id)
        self.status = status


class EvaluateError(GatewayError):
    """A query (evaluate) was refused or the chaincode answered with an error status."""

    code = "evaluate_failed"

    def __init__(self, message: str, *, tx_id: str, status: int | None = None) -> None:
        super().__init__(message, tx_id=tx_id)
        self.status = status


class SubmitError(GatewayError):
    """The orderer refused the transaction envelope; it will not be committed."""

    code = "submit_failed"


class ConfigUpdateRefusedError(SubmitError):
    """The orderer refused a channel config update; nothing was ordered.

    ``code`` is the reason's stable code: ``config_update_unauthorized`` (a
    ``mod_policy`` is not satisfied), ``config_update_stale`` (read set or
    versions do not match the config in force), ``invalid_config_update``
    (malformed or unusable update) or ``config_update_refused`` (the
    envelope failed the broadcast checks).
    """

    code = "config_update_refused"


class CommitStatusError(GatewayError):
    """The commit status could not be obtained; the transaction's fate is unknown."""

    code = "commit_status_failed"


class CommitError(GatewayError):
    """The transaction was committed as invalid (Fabric ``TxValidationCode`` != VALID)."""

    code = "commit_failed"

    def __init__(self, *, tx_id: str, validation_code: int, block_number: int) -> None:
        self.validation_code = validation_code
        self.validation_code_name = code_name(validation_code)
        self.block_number = block_number
        super().__init__(
            f"transaction {tx_id} committed as invalid in block {block_number}: "
            f"{self.validation_code_name}",
            tx_id=tx_id,
        )
