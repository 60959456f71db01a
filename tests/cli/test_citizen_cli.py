"""``accessledger citizen accesses|consent|contest`` against a real gateway on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import Consortium, create_demo_consortium
from gateway.client import Client
from tests.gateway.client.live import running_gateway
from tests.gateway.client.people import new_person, record


@dataclass(frozen=True)
class Scene:
    home: Path
    url: str
    person: str
    subject: str
    granted_event: str
    denied_event: str


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """citizen.c1 bound to a person with a tax record, one granted and one denied access."""
    home = tmp_path_factory.mktemp("citizen-cli") / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    consortium = Consortium.load(home)
    person = new_person()
    with running_gateway(home) as url:

        def client(name: str) -> Client:
            return Client.from_home(home, name, gateway_url=url)

        with client("registrar.tax.sz1") as registrar:
            receipt = registrar.put_record("tax_record", person, record("tax_record", person))
        with client("registrar.civilaffairs.sz1") as civil:
            pem = consortium.identity("citizen.c1").cert_pem().decode("ascii")
            civil.register_citizen(pem, receipt.subject)
        with client("officer.tax.sz1") as caseworker:
            granted = caseworker.request_access(person, ["tax_record"], "T2", "service_delivery")
        with client("officer.education.sz1") as education:
            denied = education.request_access(person, ["tax_record"], "T1", "school_enrolment")
        assert (granted.decision, denied.decision) == ("granted", "denied")
        yield Scene(home, url, person, receipt.subject, granted.event_id, denied.event_id)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(
        env={"ACCESSLEDGER_HOME": None, "ACCESSLEDGER_GATEWAY_URL": None, "COLUMNS": "250"}
    )


def _run(runner: CliRunner, scene: Scene, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(scene.home), "--gateway", scene.url])
    return result.exit_code, result.stdout, result.stderr


def _hukou(scene: Scene) -> str:
    with Client.from_home(scene.home, "officer.publicsecurity.sz1", gateway_url=scene.url) as o:
        return o.request_access(scene.person, ["tax_record"], "T2", "points_hukou").decision


def test_accesses_lists_who_when_why_and_the_outcome(runner: CliRunner, scene: Scene) -> None:
    code, out, err = _run(runner, scene, "citizen", "accesses", "--as", "citizen.c1", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert listing["subject"] == scene.subject
    by_id = {a["event_id"]: a for a in listing["accesses"]}
    assert {scene.granted_event, scene.denied_event} <= set(by_id)
    assert by_id[scene.granted_event]["officer"]["name"] == "officer.tax.sz1"
    assert by_id[scene.granted_event]["decision"] == "granted"
    assert by_id[scene.denied_event]["officer"]["org"] == "Education"
    assert by_id[scene.denied_event]["records"][0]["granted"] is False

    code, out, err = _run(runner, scene, "citizen", "accesses", "--as", "citizen.c1")
    assert code == 0, err
    assert scene.subject in out
    assert "officer.tax.sz1" in out
    assert "service_delivery" in out
    assert "denied" in out

    code, out, _ = _run(
        runner, scene, "citizen", "accesses", "--as", "citizen.c1", "--department", "Tax", "--json"
    )
    assert [a["event_id"] for a in json.loads(out)["accesses"]] == [scene.granted_event]


def test_consent_grant_list_revoke_changes_what_hukou_officers_get(
    runner: CliRunner, scene: Scene
) -> None:
    assert _hukou(scene) == "denied"
    code, out, err = _run(
        runner,
        scene,
        "citizen",
        "consent",
        "--as",
        "citizen.c1",
        "--grantee",
        "PublicSecurity",
        "--purpose",
        "points_hukou",
        "--type",
        "tax_record",
        "--max-tier",
        "2",
        "--days",
        "30",
        "--json",
    )
    assert code == 0, err
    consent = json.loads(out)
    assert consent["status"] == "active"
    assert consent["record_types"] == ["tax_record"]
    assert _hukou(scene) == "granted"

    code, out, err = _run(runner, scene, "citizen", "consent", "--as", "citizen.c1")
    assert code == 0, err
    assert consent["consent_id"] in out
    assert "active" in out

    code, out, err = _run(
        runner, scene, "citizen", "consent", "--as", "citizen.c1", "--revoke", consent["consent_id"]
    )
    assert code == 0, err
    assert "Revoked consent" in out
    assert _hukou(scene) == "denied"
    code, out, _ = _run(runner, scene, "citizen", "consent", "--as", "citizen.c1", "--json")
    [listed] = [c for c in json.loads(out)["consents"] if c["consent_id"] == consent["consent_id"]]
    assert listed["status"] == "revoked"


def test_contest_opens_the_review(runner: CliRunner, scene: Scene) -> None:
    code, out, err = _run(
        runner,
        scene,
        "citizen",
        "contest",
        "--as",
        "citizen.c1",
        "--event",
        scene.granted_event,
        "--reason",
        "I did not ask the tax office for anything.",
        "--json",
    )
    assert code == 0, err
    contested = json.loads(out)
    assert contested["event_id"] == scene.granted_event
    assert contested["review"]["status"] == "open"
    code, out, _ = _run(runner, scene, "citizen", "accesses", "--as", "citizen.c1", "--json")
    [seen] = [a for a in json.loads(out)["accesses"] if a["event_id"] == scene.granted_event]
    assert seen["review"]["contests"] == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["consent", "--as", "citizen.c1", "--grantee", "PublicSecurity"], "request_invalid"),
        (["consent", "--as", "citizen.c1", "--revoke", "x", "--grantee", "Tax"], "request_invalid"),
        (
            [
                "consent",
                "--as",
                "citizen.c1",
                "--grantee",
                "Tax",
                "--purpose",
                "audit",
                "--type",
                "tax_record",
                "--max-tier",
                "5",
            ],
            "tier_invalid",
        ),
        (["contest", "--as", "citizen.c1", "--event", "e", "--reason", "  "], "request_invalid"),
        (["contest", "--as", "citizen.c1", "--event", "0" * 64, "--reason", "x"], "not_found"),
        (["accesses", "--as", "citizen.c2"], "citizen_not_registered"),
    ],
)
def test_bad_citizen_input_is_one_line(
    runner: CliRunner, scene: Scene, args: list[str], code: str
) -> None:
    exit_code, out, err = _run(runner, scene, "citizen", *args)
    assert exit_code == 1
    assert out == ""
    assert err.startswith(f"error [{code}]: "), err
    assert err.count("\n") == 1
