"""AccessLedger policies: record catalogue, Cedar policy set, deterministic evaluation, governance.

Modules: ``catalogue`` (versioned JSON Schemas with per-field tiers, the
inter-provincial exchange format), ``requests`` (typed Cedar requests),
``engine`` (``PolicySet``: evaluation and batch evaluation), ``bundle``
(``PolicyBundle``: canonical bytes and hash of schema + policies + catalogue),
``governance`` (majority approval by department admins), ``canonical``
(RFC 8785 JSON), ``vocabulary`` (tiers, departments, roles, purposes).
Nothing here performs I/O beyond reading package data, so the chaincode can
use it directly. See docs/policies.md and docs/exchange-format.md.
"""
