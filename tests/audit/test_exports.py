"""FHIR R4 AuditEvent and CSV exports of access events."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from audit.exports import CSV_COLUMNS, audit_event, csv_text, fhir_bundle
from cli.main import app
from tests.audit.conftest import replay
from tests.audit.events_factory import event
from tests.audit.fhir_r4 import validate_audit_event, validate_bundle
from tests.audit.scenario import Scenario

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_the_validator_rejects_what_r4_forbids() -> None:
    """The validator is the oracle below, so first show it catches each kind of defect."""
    good = audit_event(event(NOW), channel="accessledger")
    assert validate_audit_event(good) == []
    broken = {
        "recorded": {**good, "recorded": "2026-12-01"},
        "no requestor": {**good, "agent": [{**good["agent"][0], "requestor": False}]},
        "requestor missing": {**good, "agent": [{"name": "x"}]},
        "observer missing": {**good, "source": {"site": "x"}},
        "action": {**good, "action": "READ"},
        "outcome": {**good, "outcome": "1"},
        "type missing": {k: v for k, v in good.items() if k != "type"},
        "unknown element": {**good, "decision": "granted"},
        "sev-1": {**good, "entity": [{"name": "n", "query": "cQ=="}]},
        "detail value": {**good, "entity": [{"detail": [{"type": "t"}]}]},
        "empty array": {**good, "subtype": []},
    }
    for name, resource in broken.items():
        assert validate_audit_event(resource), name


def test_granted_partial_and_denied_events_map_to_valid_audit_events() -> None:
    events = [
        event(NOW, decision="granted", case_ref="CASE-1"),
        event(NOW, decision="partial", subject="ps1:b"),
        event(NOW, decision="denied", subject="ps1:c"),
        event(NOW, emergency=True, purpose="emergency_care", subject="ps1:d"),
    ]
    bundle = fhir_bundle(events, channel="accessledger", now=NOW)
    assert validate_bundle(bundle) == []
    resources = [entry["resource"] for entry in bundle["entry"]]
    assert [r["outcome"] for r in resources] == ["0", "4", "8", "0"]
    first = resources[0]
    assert first["type"]["code"] == "110110"
    assert first["action"] == "R"
    assert first["recorded"] == "2026-12-01T02:00:00.000000Z"
    requestor = first["agent"][0]
    assert requestor["requestor"] is True
    assert requestor["who"]["identifier"]["value"] == events[0].officer.key
    assert first["source"]["observer"]["identifier"]["value"] == "accessledger"
    subject, record = first["entity"][0], first["entity"][1]
    assert subject["what"]["identifier"] == {
        "system": "urn:accessledger:subject-pseudonym",
        "value": "ps1:subjecta",
    }
    assert {"type": "case_ref", "valueString": "CASE-1"} in subject["detail"]
    assert record["what"]["identifier"]["value"] == "rp-1"
    assert {"type": "released_tiers", "valueString": "T0,T1"} in record["detail"]
    assert resources[2]["outcomeDesc"] == "denied: denied default_deny"
    emergency = resources[3]
    assert {"system": "urn:accessledger:action", "code": "emergency_read"} in emergency["subtype"]
    codes = [c["code"] for c in emergency["purposeOfEvent"][0]["coding"]]
    assert codes == ["emergency_care", "ETREAT"]


def test_csv_has_one_row_per_record_decision_and_defuses_formulas() -> None:
    events = [event(NOW, records=("rp-1", "rp-2")), event(NOW, records=(), subject="=cmd|x")]
    rows = list(csv.reader(io.StringIO(csv_text(events))))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 4
    header = {name: i for i, name in enumerate(CSV_COLUMNS)}
    assert [r[header["record_id"]] for r in rows[1:]] == ["rp-1", "rp-2", ""]
    assert rows[1][header["released_tiers"]] == "T0,T1"
    assert rows[3][header["subject"]] == "'=cmd|x"


def test_cli_exports_the_scenario_as_fhir_and_csv(built_scenario: Scenario, tmp_path: Path) -> None:
    fhir_path = tmp_path / "events.json"
    result = CliRunner().invoke(
        app,
        ["audit", "export", "--format", "fhir", "--export", str(built_scenario.export),
         "--out", str(fhir_path), "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bundle = json.loads(fhir_path.read_text())
    assert validate_bundle(bundle) == []
    ids = [entry["resource"]["id"] for entry in bundle["entry"]]
    assert ids == [built_scenario.tx[name] for name in
                   ("denied", "granted", "break_glass", "under_v2", "other_subject")]  # fmt: skip
    assert bundle["entry"][0]["resource"]["source"]["site"] == "accessledger"

    result = CliRunner().invoke(
        app, ["audit", "export", "--format", "csv", "--home", str(built_scenario.home),
              "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1 + 3 + 1 + 1 + 2  # denied rp-1; 3 granted; break-glass; v2; rp-2 + missing
    assert {r["decision"] for r in rows} == {"granted", "denied", "partial"}


def test_export_refuses_a_ledger_that_does_not_verify(tmp_path: Path, fixture_copy: Path) -> None:
    data = bytearray(fixture_copy.read_bytes())
    data[5000] ^= 0x01
    fixture_copy.write_bytes(bytes(data))
    result = CliRunner().invoke(
        app, ["audit", "export", "--format", "csv", "--export", str(fixture_copy)]
    )
    assert result.exit_code == 1
    assert "refusing to export" in result.output
    forced = CliRunner().invoke(
        app, ["audit", "export", "--format", "csv", "--export", str(fixture_copy), "--force"]
    )
    assert forced.exit_code == 0
    assert forced.stdout.splitlines()[0].startswith("event_id,")
    assert replay(fixture_copy).report.ok is False
