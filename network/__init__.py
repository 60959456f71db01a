"""AccessLedger network package."""
