"""Errors of the Fabric data-model layer.

All derive from :class:`crypto.errors.AccessLedgerError` and carry a stable
``code``. Errors about a single transaction also carry the
``TxValidationCode`` Fabric would record for it, so a validator can turn a
parse failure into the code a Fabric peer writes in ``TRANSACTIONS_FILTER``.
"""

from __future__ import annotations

from crypto.errors import AccessLedgerError


class FabricError(AccessLedgerError):
    """Base of errors raised by :mod:`network.fabric`."""

    code = "fabric_error"


class BlockFormatError(FabricError):
    """Bytes that should be a block (or a block stream) cannot be decoded."""

    code = "block_malformed"


class BlockIntegrityError(FabricError):
    """A block's data hash, header chain or metadata does not check out."""

    code = "block_integrity"

    def __init__(self, message: str, *, block_number: int | None = None) -> None:
        super().__init__(message)
        self.block_number = block_number


class BlockSignatureError(BlockIntegrityError):
    """The orderer signatures on a block do not satisfy the block validation policy."""

    code = "block_signature_invalid"


class TransactionFormatError(FabricError):
    """An envelope cannot be decoded; ``validation_code`` is what Fabric records."""

    code = "transaction_malformed"

    def __init__(self, message: str, *, validation_code: int) -> None:
        super().__init__(message)
        self.validation_code = validation_code


class MSPError(FabricError):
    """An identity is not valid in the channel's MSPs (unknown MSP, bad chain, bad OU)."""

    code = "msp_identity_invalid"


class ConfigError(FabricError):
    """A channel configuration (config block) is missing something we need."""

    code = "channel_config_invalid"


class PolicySyntaxError(FabricError):
    """A signature-policy expression such as ``OutOf(2, 'A.peer')`` is malformed."""

    code = "policy_syntax"


class PolicyNotSatisfiedError(FabricError):
    """The signatures presented do not satisfy a policy; the message says which."""

    code = "policy_not_satisfied"
