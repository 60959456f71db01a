"""AccessLedger audit package."""
