"""Cryptographic base layer: identities, signing, envelope encryption, pseudonyms.

Every other AccessLedger package depends on this one, so it also hosts the
project's root error type (:class:`crypto.errors.AccessLedgerError`).
"""
