"""Off-chain ciphertexts against the content addresses on the ledger (``--stores``).

A department's off-chain store (``HOME/stores/<Org>.sqlite`` by default) keeps
each tier ciphertext in the table ``blob(address, data, size)``, addressed by
the lowercase hex SHA-256 of ``data``, and remembers destroyed ciphertexts in
``erased_blob(address, record_id)`` (crypto-shredding). The auditor reads
these files directly, read-only, with the standard library -- the table
layout is the contract (docs/audit.md); audit never imports the gateway.

Three checks:

* every ciphertext named by a record version on the ledger is in its owning
  department's store and hashes to its address -- or the record was erased
  *on the ledger* (a committed ``EraseRecord``). A ciphertext the store marks
  as erased, or a ``tombstone`` row, for a record the ledger never erased is a
  finding: a forged tombstone cannot pass a deleted ciphertext off as erased;
* every ciphertext in every store hashes to the address it is stored under
  (a blob altered in place is found even if no record names it any more).

A record erased on the ledger whose tier keys are still in its store is *not*
a finding: the gateway shreds right after the commit and on its next start,
so the window is legitimate and an audit of a live copy may fall into it.
It is counted as ``shred_pending`` in the statistics (present only when
non-zero) for an operator to follow up.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from audit.errors import AuditInputError
from audit.findings import Finding, FindingKind
from audit.namespace import RecordVersion


@dataclass
class StoreStats:
    stores: int = 0
    blobs: int = 0
    referenced: int = 0
    erased: int = 0
    #: Records erased on the ledger whose tier keys are still in their store.
    shred_pending: int = 0

    def to_dict(self) -> dict[str, int]:
        counts = dict(self.__dict__)
        if not counts["shred_pending"]:
            del counts["shred_pending"]
        return counts


class _Store:
    """One department store opened read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            self.conn.execute("SELECT address, data FROM blob LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise AuditInputError(f"{path} is not a readable off-chain store: {exc}") from None

    def blob(self, address: str) -> bytes | None:
        row = self.conn.execute("SELECT data FROM blob WHERE address = ?", (address,)).fetchone()
        return None if row is None else bytes(row[0])

    def erased(self, address: str) -> bool:
        try:
            row = self.conn.execute(
                "SELECT 1 FROM erased_blob WHERE address = ?", (address,)
            ).fetchone()
        except sqlite3.Error:
            return False
        return row is not None

    def _ids(self, sql: str) -> set[str]:
        try:
            return {str(row[0]) for row in self.conn.execute(sql)}
        except sqlite3.Error:
            return set()

    def tombstones(self) -> set[str]:
        """Record ids the store says it erased."""
        return self._ids("SELECT record_id FROM tombstone")

    def keyed_records(self) -> set[str]:
        """Record ids the store still holds tier keys for."""
        return self._ids("SELECT DISTINCT record_id FROM tier_key")

    def all_blobs(self) -> list[tuple[str, bytes]]:
        return [(str(a), bytes(d)) for a, d in self.conn.execute("SELECT address, data FROM blob")]

    def close(self) -> None:
        self.conn.close()


def open_stores(directory: Path) -> dict[str, _Store]:
    """``{org: store}`` for every ``<Org>.sqlite`` in ``directory``."""
    if not directory.is_dir():
        raise AuditInputError(f"{directory} is not a directory of off-chain stores")
    stores = {path.stem: _Store(path) for path in sorted(directory.glob("*.sqlite"))}
    if not stores:
        raise AuditInputError(f"{directory} holds no <Org>.sqlite off-chain store")
    return stores


def check_stores(
    directory: Path, record_versions: Mapping[tuple[str, int], RecordVersion]
) -> tuple[list[Finding], StoreStats]:
    """Findings for every ciphertext that is missing or does not match (module docstring)."""
    stores = open_stores(directory)
    stats = StoreStats(stores=len(stores))
    findings: list[Finding] = []
    referenced = {
        (str(entry.record.get("owner_org", "")), address)
        for entry in record_versions.values()
        for address in entry.content_addresses().values()
    }
    try:
        for org, each in stores.items():
            for address, content in each.all_blobs():
                stats.blobs += 1
                actual = hashlib.sha256(content).hexdigest()
                # Referenced ciphertexts are reported below, with the block that names them.
                if actual != address and (org, address) not in referenced:
                    findings.append(
                        Finding(
                            FindingKind.BLOB_MISMATCH,
                            f"{org} store: ciphertext under {address[:16]}… hashes to "
                            f"{actual[:16]}…",
                        )
                    )
        findings += _erasures(stores, record_versions, stats)
        for (record_id, version), entry in sorted(record_versions.items()):
            owner = str(entry.record.get("owner_org", ""))
            store = stores.get(owner)
            for tier, address in sorted(entry.content_addresses().items()):
                stats.referenced += 1
                where = f"record {record_id} v{version} {tier} ({owner})"
                data = store.blob(address) if store else None
                if data is None:
                    if entry.erasure is not None:
                        stats.erased += 1
                        continue
                    if store is not None and store.erased(address):
                        findings.append(
                            Finding(
                                FindingKind.BLOB_MISSING,
                                f"{where}: ciphertext {address[:16]}… is marked erased in the"
                                " store, but no EraseRecord of this record is committed",
                                block=entry.block,
                                tx_id=entry.tx_id,
                            )
                        )
                        continue
                    problem = "no store for this department" if store is None else "not in store"
                    findings.append(
                        Finding(
                            FindingKind.BLOB_MISSING,
                            f"{where}: ciphertext {address[:16]}… {problem}",
                            block=entry.block,
                            tx_id=entry.tx_id,
                        )
                    )
                elif hashlib.sha256(data).hexdigest() != address:
                    findings.append(
                        Finding(
                            FindingKind.BLOB_MISMATCH,
                            f"{where}: the stored ciphertext does not hash to the on-ledger "
                            f"address {address[:16]}…",
                            block=entry.block,
                            tx_id=entry.tx_id,
                        )
                    )
    finally:
        for store in stores.values():
            store.close()
    return findings, stats


def _erasures(
    stores: Mapping[str, _Store],
    record_versions: Mapping[tuple[str, int], RecordVersion],
    stats: StoreStats,
) -> list[Finding]:
    """Tombstones without a ledger erasure (findings); erasures not yet shredded (counted)."""
    owners: dict[str, str] = {}
    erased: set[str] = set()
    for (record_id, _), entry in record_versions.items():
        owners[record_id] = str(entry.record.get("owner_org", ""))
        if entry.erasure is not None:
            erased.add(record_id)
    findings = []
    for org, store in stores.items():
        for record_id in sorted(store.tombstones() - erased):
            findings.append(
                Finding(
                    FindingKind.BLOB_MISSING,
                    f"{org} store: record {record_id} has a tombstone, but no EraseRecord of it"
                    " is committed on the ledger",
                )
            )
        keyed = store.keyed_records()
        stats.shred_pending += sum(
            1 for record_id in erased if owners[record_id] == org and record_id in keyed
        )
    return findings
