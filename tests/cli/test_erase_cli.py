"""``accessledger record erase`` against a real gateway on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import create_demo_consortium
from gateway.client import Client
from tests.gateway.client.live import running_gateway
from tests.gateway.client.people import new_person, record

REGISTRAR = "registrar.publicsecurity.sz1"
REASON = "deletion requested by the subject"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = tmp_path_factory.mktemp("erase-cli") / "home"
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


def _registered(served: tuple[Path, str]) -> str:
    home, url = served
    person = new_person()
    with Client.from_home(home, REGISTRAR, gateway_url=url) as client:
        receipt = client.put_record("residence_permit", person, record("residence_permit", person))
    return receipt.record_id


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_erase_as_json_puts_only_the_reason_hash_on_the_ledger(
    runner: CliRunner, served: tuple[Path, str]
) -> None:
    record_id = _registered(served)
    code, out, err = _invoke(
        runner, served, "record", "erase", "--as", REGISTRAR, "--record-id", record_id,
        "--reason", REASON, "--json",
    )  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["record_id"] == record_id
    assert receipt["owner_org"] == "PublicSecurity"
    assert receipt["reason_hash"] == hashlib.sha256(REASON.encode()).hexdigest()
    assert receipt["block_number"] > 0


def test_erase_prints_a_summary(runner: CliRunner, served: tuple[Path, str]) -> None:
    record_id = _registered(served)
    code, out, err = _invoke(runner, served, "record", "erase", "--as", "admin.publicsecurity",
                             "--record-id", record_id)  # fmt: skip
    assert code == 0, err
    assert f"Erased record {record_id}" in out
    assert "reason_hash" in out


def test_erase_errors_are_one_line(runner: CliRunner, served: tuple[Path, str]) -> None:
    record_id = _registered(served)
    line = _one_line_error(
        *_invoke(
            runner,
            served,
            "record",
            "erase",
            "--as",
            "registrar.housing.sz1",
            "--record-id",
            record_id,
        )
    )
    assert line.startswith("error [not_owner_department]: ")
    assert "owned by PublicSecurity" in line
    line = _one_line_error(
        *_invoke(
            runner,
            served,
            "record",
            "erase",
            "--as",
            REGISTRAR,
            "--record-id",
            record_id,
            "--reason",
            "  ",
        )
    )
    assert "--reason" in line
    assert _invoke(runner, served, "record", "erase", "--as", REGISTRAR, "--record-id",
                   record_id)[0] == 0  # fmt: skip
    line = _one_line_error(
        *_invoke(runner, served, "record", "erase", "--as", REGISTRAR, "--record-id", record_id)
    )
    assert "already erased" in line
    line = _one_line_error(
        *_invoke(runner, served, "record", "erase", "--as", REGISTRAR, "--record-id", "no-such")
    )
    assert "does not exist" in line
    line = _one_line_error(
        *_invoke(runner, served, "record", "erase", "--as", REGISTRAR, "--record-id", "bad id!")
    )
    assert line.startswith("error [request_invalid]: path.record_id")
