"""``accessledger record put|get`` against a real gateway on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import create_demo_consortium
from gateway.service.notes import JUSTIFICATION
from tests.gateway.client.live import running_gateway
from tests.gateway.client.people import new_person, record, up_to
from tests.gateway.test_app_support import read_note


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = tmp_path_factory.mktemp("records-cli") / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    with running_gateway(home) as url:
        yield home, url


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(
        env={"ACCESSLEDGER_HOME": None, "ACCESSLEDGER_GATEWAY_URL": None, "COLUMNS": "200"}
    )


def _invoke(runner: CliRunner, served: tuple[Path, str], *args: str) -> tuple[int, str, str]:
    home, url = served
    result = runner.invoke(app, [*args, "--home", str(home), "--gateway", url])
    return result.exit_code, result.stdout, result.stderr


def _put(
    runner: CliRunner,
    served: tuple[Path, str],
    tmp_path: Path,
    person: str,
    fields: dict[str, object],
) -> dict[str, object]:
    payload = tmp_path / "permit.json"
    payload.write_text(json.dumps(fields, ensure_ascii=False), encoding="utf-8")
    code, out, err = _invoke(
        runner,
        served,
        "record",
        "put",
        "--as",
        "registrar.publicsecurity.sz1",
        "--type",
        "residence_permit",
        "--subject",
        person,
        "--file",
        str(payload),
        "--json",
    )
    assert code == 0, err
    receipt: dict[str, object] = json.loads(out)
    return receipt


def test_put_then_get_prints_the_decrypted_granted_fields(
    runner: CliRunner, served: tuple[Path, str], tmp_path: Path
) -> None:
    person = new_person()
    fields = record("residence_permit", person)
    receipt = _put(runner, served, tmp_path, person, fields)
    assert receipt["record_type"] == "residence_permit"
    assert receipt["version"] == 1
    assert str(receipt["subject"]).startswith("ps1:")

    code, out, err = _invoke(
        runner,
        served,
        "record",
        "get",
        "--as",
        "officer.education.sz1",
        "--subject",
        person,
        "--type",
        "residence_permit",
        "--tier",
        "1",
        "--purpose",
        "school_enrolment",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["decision"] == "granted"
    [granted] = result["records"]
    assert granted["record_id"] == receipt["record_id"]
    assert granted["tiers"] == ["T0", "T1"]
    assert granted["fields"] == up_to("residence_permit", fields, "T1")

    code, out, err = _invoke(
        runner,
        served,
        "record",
        "get",
        "--as",
        "officer.education.sz1",
        "--subject",
        person,
        "--type",
        "residence_permit",
        "--tier",
        "T1",
        "--purpose",
        "school_enrolment",
    )
    assert code == 0, err
    assert "Decision: granted" in out
    assert fields["holder_name"] in out  # decrypted T1 field shown
    assert str(fields["residence_address"]) not in out  # T2 never released


def test_denied_get_prints_the_reason(
    runner: CliRunner, served: tuple[Path, str], tmp_path: Path
) -> None:
    person = new_person()
    _put(runner, served, tmp_path, person, record("residence_permit", person))
    code, out, err = _invoke(
        runner,
        served,
        "record",
        "get",
        "--as",
        "officer.education.sz1",
        "--subject",
        person,
        "--type",
        "residence_permit",
        "--tier",
        "2",
        "--purpose",
        "school_enrolment",
    )
    assert code == 0, err
    assert "Decision: denied" in out
    assert "forbid:guard.clearance_cap" in out


def test_break_glass_get_is_flagged_for_review(
    runner: CliRunner, served: tuple[Path, str], tmp_path: Path
) -> None:
    person = new_person()
    health = tmp_path / "health.json"
    health.write_text(json.dumps(record("health_record", person)), encoding="utf-8")
    code, _, err = _invoke(
        runner,
        served,
        "record",
        "put",
        "--as",
        "registrar.health.sz1",
        "--type",
        "health_record",
        "--subject",
        person,
        "--file",
        str(health),
    )
    assert code == 0, err
    code, out, err = _invoke(
        runner,
        served,
        "record",
        "get",
        "--as",
        "officer.health.sz2",
        "--subject",
        person,
        "--type",
        "health_record",
        "--tier",
        "3",
        "--purpose",
        "emergency_care",
        "--emergency",
        "--justification",
        "unconscious patient",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["decision"] == "granted"
    assert result["emergency"] is True
    assert result["obligations"] == ["review_required"]
    assert result["records"][0]["schema_version"] == 1
    # The text reached the gateway: stored encrypted for the Audit department, not on the ledger.
    home, _ = served
    ciphertext, text = read_note(home, JUSTIFICATION, result["tx_id"])
    assert text == "unconscious patient"
    assert b"unconscious patient" not in ciphertext


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--subject", "110105194912310021", "--tier", "1"], "identity_number_invalid"),
        (["--subject", "11010519491231002X", "--tier", "9"], "tier_invalid"),
        (
            ["--subject", "11010519491231002X", "--tier", "1", "--emergency"],
            "justification_required",
        ),
        (["--subject", "11010519491231002X", "--tier", "1", "--as", "nobody"], "unknown_identity"),
    ],
)
def test_bad_get_input_is_one_line_and_a_non_zero_exit(
    runner: CliRunner, served: tuple[Path, str], args: list[str], code: str
) -> None:
    base = ["record", "get", "--type", "residence_permit", "--purpose", "school_enrolment"]
    if "--as" not in args:
        base += ["--as", "officer.education.sz1"]
    exit_code, out, err = _invoke(runner, served, *base, *args)
    assert exit_code == 1
    assert out == ""
    assert err.startswith(f"error [{code}]: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_put_input_is_one_line_and_changes_nothing(
    runner: CliRunner, served: tuple[Path, str], tmp_path: Path
) -> None:
    person = new_person()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"status": "valid"}), encoding="utf-8")
    cases = [
        (broken, "payload_not_json"),
        (tmp_path / "missing.json", "payload_unreadable"),
        (invalid, "record_invalid"),
    ]
    for path, code in cases:
        exit_code, out, err = _invoke(
            runner,
            served,
            "record",
            "put",
            "--as",
            "registrar.publicsecurity.sz1",
            "--type",
            "residence_permit",
            "--subject",
            person,
            "--file",
            str(path),
        )
        assert out == ""
        assert exit_code == 1
        assert err.startswith(f"error [{code}]: "), err
        assert err.count("\n") == 1


def test_unreachable_gateway_is_one_line(runner: CliRunner, served: tuple[Path, str]) -> None:
    home, _ = served
    result = runner.invoke(
        app,
        [
            "record",
            "get",
            "--as",
            "officer.education.sz1",
            "--subject",
            "11010519491231002X",
            "--type",
            "residence_permit",
            "--tier",
            "1",
            "--purpose",
            "school_enrolment",
            "--home",
            str(home),
            "--gateway",
            "http://127.0.0.1:1",
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error [gateway_unreachable]: ")
