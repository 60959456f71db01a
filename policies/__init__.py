"""AccessLedger policies package."""
