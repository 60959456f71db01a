"""Audit replay traces every note key the Audit custodian released to a citizen.

A real run (:mod:`tests.gateway.note_release_scene`, over HTTP) leaves four
on-demand releases in ``HOME/custodians/Audit/note-releases.jsonl``; then a
CivilAffairs admin revokes ``citizen.c2``'s certificate (a CRL in a config
block). Replaying the home traces all four from the ledger alone. Then a
forger appends lines to another custodian's note-release log, each breaking
exactly one check; each is named ``note_release_untraced`` with the check it
fails, and would pass if that check were removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.findings import Finding, FindingKind
from audit.replay import ReplayOutcome
from audit.report import AuditReport
from audit.sources import HomeSource
from chaincode.caller import certificate_fingerprint
from chaincode.codec import format_time
from cli.main import app
from gateway.client.operator import revoke_certificate
from tests.audit.conftest import replay
from tests.gateway.note_release_scene import BETWEEN, NoteScene, note_release_scene

FORGED_ORG = "Forgery"


@dataclass(frozen=True)
class Run:
    scene: NoteScene
    genuine: list[dict[str, Any]]
    revocation_block: int
    clean: ReplayOutcome


@pytest.fixture(scope="module")
def run(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("note-release-audit")
    with note_release_scene(demo_home, root) as scene:
        for name in ("citizen.c2", BETWEEN, "citizen.c1"):
            client = scene.client(name)
            try:
                answer = client.request("GET", f"/v1/me/notes/{scene.event_id}")
            finally:
                client.close()
            assert answer.status_code == 200, answer.text
        revoked = revoke_certificate(
            scene.home,
            identity_name="citizen.c2",
            admin_name="admin.civilaffairs",
            gateway_url=scene.gateway.url,
        )
    genuine = scene.lines()
    assert len(genuine) == 4  # three for c2, the justification for n1, none for c1
    return Run(scene, genuine, revoked.block_number, replay(HomeSource(scene.home)))


def test_a_real_runs_note_releases_are_all_traced(run: Run) -> None:
    report = run.clean.report
    assert report.findings == []
    assert report.ok
    assert report.checks["note releases"] == "4 of 4 traced from 1 log(s)"
    # Every genuine line was checked against a state before the revocation.
    assert all(line["ledger_height"] <= run.revocation_block for line in run.genuine)


def _line(run: Run, name: str, kind: str) -> dict[str, Any]:
    fingerprint = certificate_fingerprint(run.scene.consortium.identity(name).certificate)
    [line] = [
        line
        for line in run.genuine
        if line["citizen_fingerprint"] == fingerprint and line["note_kind"] == kind
    ]
    return dict(line)


def _as(run: Run, line: dict[str, Any], name: str) -> dict[str, Any]:
    """``line`` as released to ``name``, sealed to that identity's own registered key."""
    identity = run.scene.consortium.identity(name)
    public = run.scene.consortium.encryption_public_key(name)
    return {
        **line,
        "citizen_msp_id": identity.msp_id,
        "citizen_fingerprint": certificate_fingerprint(identity.certificate),
        "recipient_key_sha256": hashlib.sha256(public).hexdigest(),
    }


def _forgeries(run: Run) -> dict[str, dict[str, Any] | str]:
    """Each forged line, by name; each breaks one check (a string: a line that is not JSON)."""
    scene = run.scene
    contest = _line(run, "citizen.c2", "contest_reason")
    justification = _line(run, "citizen.c2", "justification")
    event = next(e for e in run.clean.events if e.event_id == scene.event_id)
    assert event.block is not None
    review_tx = scene.note_tx["review_note"]
    review_hash = hashlib.sha256(b"Emergency confirmed by the duty log of ward 3.").hexdigest()
    missing = dict(contest)
    del missing["recipient_key_sha256"]
    return {
        "no_event": {**contest, "event_id": "f" * 64},
        "other_event": {**justification, "event_id": scene.plain_event_id},
        "wrong_kind": {
            **contest,
            "note_kind": "review_note",
            "note_record_id": f"review_note-{contest['note_tx_id']}",
        },
        "wrong_hash": {**contest, "note_hash": hashlib.sha256(b"another text").hexdigest()},
        "not_a_citizen": _as(run, contest, "officer.health.sz1"),
        "other_subject": _as(run, contest, "citizen.c3"),
        "wrong_key": {
            **contest,
            "recipient_key_sha256": hashlib.sha256(
                scene.consortium.encryption_public_key("citizen.c1")
            ).hexdigest(),
        },
        "before_binding": {**contest, "ledger_height": scene.c2_bound_block},
        "before_event": {**justification, "ledger_height": event.block},
        # n1 was bound and keyed before the review; the review note was not yet on the ledger.
        "before_note": {
            **_as(run, _line(run, BETWEEN, "justification"), BETWEEN),
            "note_kind": "review_note",
            "note_tx_id": review_tx,
            "note_hash": review_hash,
            "note_record_id": f"review_note-{review_tx}",
            "ledger_height": scene.note_blocks["review_note"],
        },
        "beyond_ledger": {**contest, "ledger_height": run.clean.report.height + 1},
        "revoked": {**contest, "ledger_height": run.revocation_block + 1},
        "before_decision": {
            **contest,
            "released_at": format_time(event.decided_at - timedelta(seconds=1)),
        },
        # Any later date passes the other checks; the credential's certificate has expired by then.
        "expired_certificate": {**contest, "released_at": "2099-01-01T00:00:00.000000Z"},
        "not_json": '{"format": "accessledger-note-release/1", ',
        "missing_field": missing,
        "unknown_kind": {**contest, "note_kind": "diary"},
        "record_id_mismatch": {**contest, "note_record_id": f"review_note-{contest['note_tx_id']}"},
    }


@dataclass(frozen=True)
class Forged:
    report: AuditReport
    log: Path
    #: Findings by forgery name (``"genuine"``: the genuine lines, copied first).
    findings: dict[str, list[Finding]]


@pytest.fixture(scope="module")
def forged(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Forged:
    """Replay a copy of the home where another custodian's log holds genuine and forged lines."""
    home = tmp_path_factory.mktemp("forged") / "home"
    shutil.copytree(run.scene.home, home)
    variants = _forgeries(run)
    lines = [*run.genuine, *variants.values()]
    log = home / "custodians" / FORGED_ORG / "note-releases.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join((v if isinstance(v, str) else json.dumps(v)) + "\n" for v in lines))
    report = replay(HomeSource(home)).report
    names = ["genuine"] * len(run.genuine) + list(variants)
    by_name: dict[str, list[Finding]] = {name: [] for name in names}
    for finding in report.findings:
        number = int(finding.message.split(" line ", 1)[1].split(":", 1)[0])
        by_name[names[number - 1]].append(finding)
    return Forged(report, log, by_name)


def test_genuine_lines_trace_from_any_custodians_log(run: Run, forged: Forged) -> None:
    # Copied into another custodian's log the genuine lines still trace; every finding is a
    # forged line's, of the new kind, naming the log.
    assert forged.findings["genuine"] == []
    assert all(f.kind is FindingKind.NOTE_RELEASE for f in forged.report.findings)
    assert all(str(forged.log) in f.message for f in forged.report.findings)
    variants = len(forged.findings) - 1
    assert forged.report.checks["note releases"] == (
        f"8 of {8 + variants} traced from 2 log(s)"  # the Audit log's four, and their copies
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_event", "names no committed, valid access event"),
        ("other_event", "that the event did not carry at ledger height"),
        ("wrong_kind", "names a review_note note of transaction"),
        ("wrong_hash", "names another note hash than the one the ledger holds"),
        ("not_a_citizen", "went to a credential not bound to a citizen at ledger height"),
        ("other_subject", "went to a credential bound to another subject than the event's"),
        ("wrong_key", "was sealed to another key than the one the ledger registered"),
        ("before_binding", "went to a credential not bound to a citizen at ledger height"),
        ("before_event", "a state before the access event was committed"),
        ("before_note", "that the event did not carry at ledger height"),
        ("beyond_ledger", "beyond the replayed ledger's height"),
        ("revoked", "was released to a certificate revoked on the channel"),
        ("before_decision", "was released before the access was decided"),
        ("expired_certificate", "outside its validity period at release time"),
        ("not_json", "is not JSON"),
        ("missing_field", "lacks text field(s) recipient_key_sha256"),
        ("unknown_kind", "note_kind 'diary' is not a note kind"),
        ("record_id_mismatch", "note_record_id is not the record id of that kind and tx id"),
    ],
)
def test_each_forged_release_is_named_with_the_check_it_fails(
    forged: Forged, name: str, message: str
) -> None:
    [finding] = forged.findings[name]
    assert finding.kind is FindingKind.NOTE_RELEASE
    assert finding.kind.value == "note_release_untraced"
    assert message in finding.message


def test_findings_point_at_the_access_event(run: Run, forged: Forged) -> None:
    event = next(e for e in run.clean.events if e.event_id == run.scene.event_id)
    [wrong_key] = forged.findings["wrong_key"]
    assert (wrong_key.block, wrong_key.tx_index, wrong_key.tx_id) == (
        event.block,
        event.tx_index,
        event.tx_id,
    )
    [unknown] = forged.findings["no_event"]
    assert (unknown.block, unknown.tx_id) == (None, None)


def test_the_revocation_is_judged_at_the_logged_height(run: Run, forged: Forged) -> None:
    [revoked] = forged.findings["revoked"]
    assert f"config block {run.revocation_block}" in revoked.message
    assert f"in force at ledger height {run.revocation_block + 1}" in revoked.message


def test_the_cli_traces_the_logs_it_is_given(run: Run, tmp_path: Path) -> None:
    genuine = tmp_path / "genuine.jsonl"
    shutil.copy(run.scene.log, genuine)
    forged = tmp_path / "forged.jsonl"
    forged.write_text(json.dumps({**run.genuine[0], "note_hash": "0" * 64}) + "\n")

    def replay_cli(log: Path, report: Path) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(
            app,
            [
                "audit", "replay", "--home", str(run.scene.home), "--note-releases", str(log),
                "--report", str(report), "--workers", "0",
            ],
        )  # fmt: skip
        return result.exit_code, json.loads(report.read_text())

    code, document = replay_cli(genuine, tmp_path / "genuine.json")
    assert code == 0
    assert document["checks"]["note releases"] == "4 of 4 traced from 1 log(s)"
    code, document = replay_cli(forged, tmp_path / "forged.json")
    assert code != 0
    assert document["checks"]["note releases"] == "0 of 1 traced from 1 log(s)"
    [finding] = document["findings"]
    assert finding["kind"] == "note_release_untraced"
    assert "names another note hash" in finding["message"]
