"""AccessLedger's chaincode namespace as the audit reads it: keys and the values kept from them.

The observer in :mod:`audit.accessledger` re-checks each AccessLedger
transaction; this module holds what that check reads and remembers, apart
from the checking itself:

* the object types of AccessLedger's composite keys (docs/chaincode.md) and
  which chaincode functions may write each of them (:data:`WRITERS`);
* :func:`split_key` and :func:`json_value`, reading a key and a stored value;
* the auditor's records of committed state: departments pinned by
  ``InitLedger``/``AddDepartment`` (:func:`departments_from_config`), policy
  versions as anchored (:class:`AnchoredBundle`), record versions with their
  erasure (:class:`RecordVersion`), registered encryption keys
  (:class:`EncryptionKey`) and the replay's counters (:class:`AccessStats`).

The off-chain and key-release checks (:mod:`audit.offchain`,
:mod:`audit.keyreleases`) and the decision re-check (:mod:`audit.decisions`)
consume these values, so they live here rather than beside the observer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from audit.erasures import ERASE_FUNCTION
from crypto.certificates import load_certificate_pem
from policies.bundle import PolicyBundle

CONFIG_KEY = "config"
POLICY_KEY = "policy"
POLICY_BUNDLE = "policy_bundle"
POLICY_META = "policy_meta"
RECORD = "record"
RECORD_VERSION = "record_version"
ACCESS = "access"
CONSENT = "consent"
SUBJECT_RECORD = "subject_record"
ENC_KEY = "enc_key"
ERASURE = "erasure"
CITIZEN = "citizen"
SUBJECT_CITIZEN = "subject_citizen"
CITIZEN_INDEX_KEY = "citizen_index"

#: Functions allowed to write each kind of key.
WRITERS = {
    POLICY_BUNDLE: {"InstallPolicy"},
    POLICY_META: {"InstallPolicy"},
    POLICY_KEY: {"InstallPolicy"},
    CONFIG_KEY: {"InitLedger", "AddDepartment"},
    ACCESS: {"RequestAccess", "ContestAccess", "ReviewAccess"},
    RECORD: {"RegisterRecord", "AmendRecord", ERASE_FUNCTION},
    ERASURE: {ERASE_FUNCTION},
    RECORD_VERSION: {"RegisterRecord", "AmendRecord"},
    ENC_KEY: {"RegisterEncryptionKey"},
    CITIZEN: {"RegisterCitizen"},
    SUBJECT_CITIZEN: {"RegisterCitizen"},
    CITIZEN_INDEX_KEY: {"InitLedger"},
}


def split_key(key: str) -> tuple[str, tuple[str, ...]]:
    """``(object type, attributes)`` of a composite key; ``(key, ())`` for a simple key."""
    if not key.startswith("\x00"):
        return key, ()
    parts = key[1:].split("\x00")
    if parts and parts[-1] == "":
        parts.pop()
    return (parts[0] if parts else ""), tuple(parts[1:])


def json_value(value: bytes | None) -> Any:
    """A stored value parsed as JSON; ``None`` if deleted or not JSON (a forged value)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Department:
    org: str
    msp_id: str
    roots: tuple[x509.Certificate, ...]


def departments_from_config(config: Any) -> dict[str, Department]:
    """The departments of an InitLedger configuration document."""
    out = {}
    for entry in config["departments"]:
        roots = tuple(load_certificate_pem(p.encode("ascii")) for p in entry["root_certs"])
        out[str(entry["org"])] = Department(str(entry["org"]), str(entry["msp_id"]), roots)
    if not out:
        raise ValueError("no departments")
    return out


@dataclass(frozen=True)
class AnchoredBundle:
    """A policy version as installed: where, and the bundle itself."""

    version: int
    bundle_hash: str
    bundle: PolicyBundle
    block: int
    tx_id: str


@dataclass(frozen=True)
class RecordVersion:
    """One version of a record as committed, with the transaction that wrote it."""

    record: Mapping[str, Any]
    block: int
    tx_id: str
    #: The committed erasure document once the record was erased (``EraseRecord``).
    erasure: Mapping[str, Any] | None = None

    @property
    def record_id(self) -> str:
        return str(self.record.get("record_id", ""))

    @property
    def version(self) -> int:
        value = self.record.get("version")
        return value if isinstance(value, int) else 0

    def content_addresses(self) -> dict[str, str]:
        """``{tier: content address}`` of this version's ciphertexts."""
        tiers = self.record.get("tiers")
        if not isinstance(tiers, Mapping):
            return {}
        return {
            str(t): str(entry.get("content_address"))
            for t, entry in tiers.items()
            if isinstance(entry, Mapping)
        }


@dataclass(frozen=True)
class EncryptionKey:
    """An X25519 key registered for an identity: when, and the SHA-256 of the public key."""

    registered_at: datetime
    sha256: str


@dataclass
class AccessStats:
    events: int = 0
    decisions_rechecked: int = 0
    policy_versions: int = 0
    records: int = 0
    reviews: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)
