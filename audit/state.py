"""Compare the world state rebuilt by replay with the state an engine stored.

The engine's store is read only through its query API
(:meth:`network.engine.statedb.StateSnapshot.get_state_range`), namespace by
namespace: every namespace a transaction of the ledger touched, valid or not,
so writes the engine applied for an invalid transaction show up as well.
Messages name keys and versions and give values only as a short SHA-256, so a
report never copies state values around.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

from audit.findings import Finding, FindingKind
from network.engine.statedb import VersionedKV
from network.fabric.replay import MemoryState

#: Differences listed one by one; beyond this they are counted in one more finding.
MAX_LISTED = 50


class StateRanges(Protocol):
    """The part of the engine's query API the comparison uses."""

    def get_state_range(
        self, namespace: str, start_key: str, end_key: str, *, limit: int | None = None
    ) -> list[VersionedKV]: ...


def _describe(value: bytes | None, version: tuple[int, int] | None) -> str:
    if value is None:
        return "absent"
    digest = hashlib.sha256(value).hexdigest()[:16]
    where = f" written at {version[0]}:{version[1]}" if version else ""
    return f"{len(value)} bytes sha256:{digest}…{where}"


def _short(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "…'"


def compare_state(
    replayed: MemoryState, engine: StateRanges, namespaces: Iterable[str]
) -> list[Finding]:
    """Findings for every key whose value or version differs (see the module docstring)."""
    differences: list[str] = []
    for namespace in sorted(set(namespaces) | set(replayed.entries)):
        ours = replayed.entries.get(namespace, {})
        theirs = {
            kv.key: (kv.value, (kv.version.block_num, kv.version.tx_num))
            for kv in engine.get_state_range(namespace, "", "")
        }
        for key in sorted(set(ours) | set(theirs)):
            mine = ours.get(key)
            stored = theirs.get(key)
            if mine == stored:
                continue
            differences.append(
                f"{namespace}/{_short(key)}: replay gives "
                f"{_describe(*mine) if mine else 'absent'}, the engine stores "
                f"{_describe(*stored) if stored else 'absent'}"
            )
    findings = [Finding(FindingKind.STATE, text) for text in differences[:MAX_LISTED]]
    if len(differences) > MAX_LISTED:
        findings.append(
            Finding(
                FindingKind.STATE,
                f"{len(differences) - MAX_LISTED} more state differences not listed",
            )
        )
    return findings
