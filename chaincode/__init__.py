"""AccessLedger chaincode package."""
