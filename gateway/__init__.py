"""AccessLedger gateway: the agency-facing side of the consortium.

Subpackages:

``gateway.auth``
    caller authentication: HTTP Message Signatures (RFC 9421, ecdsa-p256-sha256)
    made with the caller's Fabric identity, verified against the consortium's
    CAs with replay protection (see ``docs/authentication.md``).
``gateway.store``
    each department's off-chain store (SQLite by default, PostgreSQL on
    request): ciphertexts addressed by SHA-256, custodian-sealed tier keys,
    and crypto-shredding with tombstones.

Importing :mod:`gateway` imports neither; each is loaded when used.
"""
