"""AccessLedger gateway package."""
