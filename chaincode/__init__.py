"""The AccessLedger smart contract, a Fabric chaincode on the fabric-chaincode-python shim.

``AccessLedgerChaincode`` runs unchanged in the embedded engine's chaincode
host and, via ``python -m chaincode``, as Fabric chaincode-as-a-service.
Functions, arguments, state layout and events: ``docs/chaincode.md``.
"""

from chaincode.caller import LedgerConfig
from chaincode.contract import (
    CHAINCODE_NAME,
    EVALUATE_FUNCTIONS,
    FUNCTIONS,
    INIT_FUNCTION,
    AccessLedgerChaincode,
)
from chaincode.errors import parse_error_message

__all__ = [
    "CHAINCODE_NAME",
    "EVALUATE_FUNCTIONS",
    "FUNCTIONS",
    "INIT_FUNCTION",
    "AccessLedgerChaincode",
    "LedgerConfig",
    "parse_error_message",
]
