"""The auditor's own inputs are checked before the replay, as input errors, not findings.

A malformed ``expected_tip`` or a file that is not a release log at all says
nothing about the ledger: it must stop the audit with ``audit_input_invalid``
rather than appear as a ``tip_mismatch`` or ``key_release_untraced`` finding.
A real log with a damaged line is still a finding (it may be tampering).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.errors import AuditInputError
from audit.findings import FindingKind
from audit.keyreleases import RELEASE_FORMAT
from audit.notereleases import NOTE_RELEASE_FORMAT
from tests.audit.conftest import FIXTURE_LEDGER, replay

TIP = "0ea9928f3d168e1e3c6c4dffcc7310b45c632d36556bd7521bb6fe78288e4669"


@pytest.mark.parametrize("tip", ["zz", "", TIP[:-2], TIP + "00", " " + TIP[1:], "0x" + TIP[2:]])
def test_a_malformed_expected_tip_is_an_input_error(tip: str) -> None:
    with pytest.raises(AuditInputError) as caught:
        replay(FIXTURE_LEDGER, expected_tip=tip)
    assert caught.value.code == "audit_input_invalid"
    assert "64 hexadecimal" in caught.value.message


def test_a_well_formed_tip_in_capitals_is_compared() -> None:
    assert replay(FIXTURE_LEDGER, expected_tip=TIP.upper()).report.ok
    report = replay(FIXTURE_LEDGER, expected_tip="ab" * 32).report
    assert [f.kind for f in report.findings] == [FindingKind.TIP]


@pytest.mark.parametrize(
    ("option", "content"),
    [
        ("key_releases", '{"holder_name": "x"}\n'),
        ("key_releases", "[1, 2]\nnot json\n"),
        ("note_releases", json.dumps({"format": RELEASE_FORMAT}) + "\n"),  # the other log
        ("key_releases", json.dumps({"format": NOTE_RELEASE_FORMAT}) + "\n"),
        ("key_releases", "\xff"),
    ],
)
def test_a_file_that_is_not_a_release_log_is_an_input_error(
    tmp_path: Path, option: str, content: str
) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(content, encoding="latin-1" if "\xff" in content else "utf-8")
    with pytest.raises(AuditInputError) as caught:
        replay(FIXTURE_LEDGER, **{option: (log,)})
    assert str(log) in caught.value.message


def test_a_missing_log_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(AuditInputError, match=r"missing\.jsonl"):
        replay(FIXTURE_LEDGER, key_releases=(tmp_path / "missing.jsonl",))


def test_an_empty_log_is_a_log_with_no_releases(tmp_path: Path) -> None:
    log = tmp_path / "releases.jsonl"
    log.write_text("\n")
    report = replay(FIXTURE_LEDGER, key_releases=(log,)).report
    assert report.ok
    assert report.checks["key releases"] == "0 traced from 1 log(s)"


def test_a_release_log_with_a_damaged_line_is_still_a_finding(tmp_path: Path) -> None:
    log = tmp_path / "releases.jsonl"
    log.write_text("garbage\n" + json.dumps({"format": RELEASE_FORMAT}) + "\n")
    report = replay(FIXTURE_LEDGER, key_releases=(log,)).report
    assert [f.kind for f in report.findings] == [FindingKind.KEY_RELEASE] * 2
    assert "line 1: is not JSON" in report.findings[0].message
