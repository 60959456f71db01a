"""The gateway's orchestration behind the routes.

:mod:`.core` composes the rest: :mod:`.ledger` (the network, as the gateway
uses it), :mod:`.transactions` (caller-signed proposals and transactions),
:mod:`.records` (validate, tier, encrypt, store), :mod:`.access` (access
results and key release), :mod:`.queries` (citizens' and auditors' views),
:mod:`.notes` (encrypted free text), :mod:`.policy` (the anchored bundle),
:mod:`.releases` (the key-release log), :mod:`.limits` (rate limiting) and
:mod:`.bootstrap` (first start of a home's ledger).
"""
