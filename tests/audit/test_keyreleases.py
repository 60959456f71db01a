"""Key releases held to the CRLs in force at the height their custodian checked.

Unit checks of :func:`audit.keyreleases._after_revocation` with stand-in MSP
registries (whose ``revokes`` answers as told) and a real officer
certificate; the end-to-end case, a forged late release after a real
revocation, is in ``tests/gateway/client/test_operator_jobs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from audit.keyreleases import KeyRelease, LedgerFacts, _after_revocation, read_releases
from audit.notereleases import read_note_releases
from chaincode.caller import certificate_fingerprint
from crypto.consortium import Consortium

OFFICER = "officer.education.sz1"
WHEN = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass
class _MSP:
    revoked: bool

    def revokes(self, certificate: Any) -> bool:
        return self.revoked


@dataclass
class _Registry:
    msps: dict[str, _MSP]


def _release(consortium: Consortium, height: int | None) -> KeyRelease:
    officer = consortium.identity(OFFICER)
    return KeyRelease(
        line=1,
        released_at=WHEN,
        org="PublicSecurity",
        tx_id="tx",
        block_number=3,
        record_id="rp-1",
        version=1,
        tier="T1",
        content_address="00" * 32,
        officer_msp_id=officer.msp_id,
        officer_fingerprint=certificate_fingerprint(officer.certificate),
        recipient_key_sha256="11" * 32,
        expires_at=WHEN,
        ledger_height=height,
    )


def _facts(consortium: Consortium, history: list[tuple[int, bool]]) -> LedgerFacts:
    officer = consortium.identity(OFFICER)
    key = (officer.msp_id, certificate_fingerprint(officer.certificate))
    return LedgerFacts(
        events={},
        records={},
        keys={},
        msp_history=[
            (since, _Registry({officer.msp_id: _MSP(revoked)}))  # type: ignore[misc]
            for since, revoked in history
        ],
        officer_certificates={key: officer.certificate.public_bytes(Encoding.PEM)},
    )


def test_the_config_in_force_at_the_logged_height_decides(consortium: Consortium) -> None:
    # Genesis config (in force from height 1), then a CRL in the config block 9 (from 10).
    facts = _facts(consortium, [(1, False), (10, True)])
    assert _after_revocation(_release(consortium, 9), facts) is None
    late = _after_revocation(_release(consortium, 10), facts)
    assert late is not None
    assert "config block 9" in late
    assert "ledger height 10" in late


def test_no_config_below_the_height_or_no_height_judges_nothing(consortium: Consortium) -> None:
    # A replay that knows only a later config must not apply its CRL to an earlier release.
    assert _after_revocation(_release(consortium, 5), _facts(consortium, [(10, True)])) is None
    assert _after_revocation(_release(consortium, None), _facts(consortium, [(1, True)])) is None


def test_a_line_nested_too_deep_for_the_parser_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    log = tmp_path / "releases.jsonl"
    log.write_text("[" * 100_000 + "\n" + "{}\n")
    deep, empty = list(read_releases(log))
    assert deep == (1, "is not JSON")
    assert isinstance(empty, tuple)
    assert empty[0] == 2  # the next line is still read
    notes = tmp_path / "note-releases.jsonl"
    notes.write_text("[" * 100_000 + "\n")
    assert list(read_note_releases(notes)) == [(1, "is not JSON")]
