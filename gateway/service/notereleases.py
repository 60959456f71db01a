"""Note keys the Audit custodian seals on demand to a citizen: the state they rest on, the log.

A citizen whose credential has no copy of a note key sealed to its current
X25519 key gets one sealed on the spot (:mod:`gateway.service.notes`). That
release is checked against one committed snapshot -- the access event and
its notes, the caller's citizen binding, the key registered for the
credential, the CRLs of the config in force -- and appended, fsynced, to the
Audit custodian's note-release log before the key leaves, with that
snapshot's height, so audit replay can re-check it against exactly that
state (``audit/notereleases.py``; format in docs/api.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaincode.caller import certificate_fingerprint
from chaincode.ledger import ACCESS, CITIZEN, ENC_KEY
from crypto.identity import Identity
from gateway.service.ledger import LedgerClient, composite_key
from gateway.service.queries import KeyHolder
from gateway.service.releases import ReleaseLog
from gateway.store import TierKeyEntry


@dataclass(frozen=True)
class NoteOpener:
    """The Audit custodian, as a citizen's note read needs it.

    ``open_key`` opens a note's stored key (the custodian's copy) and raises
    if it cannot; ``log`` is the custodian's note-release log, where every
    key sealed on demand is recorded first.
    """

    open_key: Callable[[TierKeyEntry], bytes]
    log: ReleaseLog


@dataclass(frozen=True)
class ReleaseSnapshot:
    """What one committed snapshot says about a citizen's on-demand note release.

    ``event`` is the access event as stored there (empty if absent),
    ``bound_subject`` the subject that state binds the caller's credential
    to (``None``: not bound), ``registered`` the caller's registered X25519
    key (``None``: none, or unreadable).
    """

    height: int
    event: Mapping[str, Any]
    bound_subject: str | None
    registered: KeyHolder | None


def release_snapshot(ledger: LedgerClient, caller: Identity, event_id: str) -> ReleaseSnapshot:
    """The event, the caller's binding and registered key, read at one height."""
    fingerprint = certificate_fingerprint(caller.certificate)
    height, (stored, binding, key) = ledger.states_at(
        [
            composite_key(ACCESS, event_id),
            composite_key(CITIZEN, caller.msp_id, fingerprint),
            composite_key(ENC_KEY, caller.msp_id, fingerprint),
        ]
    )
    bound = _json_object(binding).get("subject")
    public = _json_object(key).get("public_key")
    try:
        raw = base64.b64decode(public, validate=True) if isinstance(public, str) else b""
    except (ValueError, binascii.Error):
        raw = b""
    return ReleaseSnapshot(
        height=height,
        event=_json_object(stored),
        bound_subject=bound if isinstance(bound, str) else None,
        registered=KeyHolder(caller.msp_id, fingerprint, raw) if len(raw) == 32 else None,
    )


def _json_object(value: bytes | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value or b"null")
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {}
