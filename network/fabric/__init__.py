"""Hyperledger Fabric's data model, in pure functions over the genuine protobuf messages.

Shared by the embedded ledger engine (which writes Fabric blocks) and audit
replay (which verifies them): blocks and their hashes and signatures
(:mod:`.blocks`), transaction decoding (:mod:`.transactions`), channel MSPs
(:mod:`.msp`), signature and implicit-meta policies (:mod:`.policy`), the
committing peer's validation rules (:mod:`.validator`, with the per-transaction
checks in :mod:`.txchecks`) and a verifying
ledger replay (:mod:`.replay`).
"""
