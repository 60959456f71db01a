"""Rotating keys over real HTTP on 127.0.0.1: custodian keys (admin job) and officers' keys.

The gateway runs under uvicorn on a fresh demo home; every request is signed
by the acting identity. The tests read the department's store and key files
directly, as an auditor of the key custodian would, to check what the
rotation did to every stored sealed key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from crypto.consortium import create_demo_consortium
from crypto.envelope import open_sealed_key
from crypto.errors import DecryptionError
from crypto.keyfiles import load_x25519_private_key
from gateway.client import Client, ClientError, NotFound, PermissionDenied
from gateway.client.http import Call, prepare
from gateway.client.payloads import _b64decode
from gateway.custodian_keys import (
    CustodianKeyRing,
    custodian_key_path,
    previous_key_path,
)
from gateway.store import DepartmentStore, default_store_path
from tests.gateway.client.live import running_gateway
from tests.gateway.client.people import new_person, record, up_to

ORG = "PublicSecurity"
REGISTRAR = "registrar.publicsecurity.sz1"
OFFICER = "officer.education.sz1"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rotation") / "home"
    create_demo_consortium(path, now=datetime.now(UTC))
    return path


@pytest.fixture(scope="module")
def gateway_url(home: Path) -> Iterator[str]:
    with running_gateway(home) as url:
        yield url


def client(home: Path, url: str, name: str) -> Client:
    return Client.from_home(home, name, gateway_url=url)


def stored_rows(home: Path, org: str) -> list[tuple[str, str, bytes, str | None]]:
    """Every sealed key row of ``org``'s store: (record, tier, sealed key, key id)."""
    store = DepartmentStore.open(org, f"sqlite:///{default_store_path(home, org)}")
    try:
        with store.session() as session:
            rows = session.connection().exec_driver_sql(
                "SELECT record_id, tier, sealed_key, key_id FROM tier_key ORDER BY 1, 2"
            )
            return [(r[0], r[1], bytes(r[2]), r[3]) for r in rows]
    finally:
        store.close()


def test_rotation_reseals_every_row_and_granted_lookups_still_decrypt(
    home: Path, gateway_url: str
) -> None:
    registrar = client(home, gateway_url, REGISTRAR)
    officer = client(home, gateway_url, OFFICER)
    admin = client(home, gateway_url, "admin.publicsecurity")
    people = [new_person() for _ in range(3)]
    permits = [record("residence_permit", p) for p in people]
    receipts = [
        registrar.put_record("residence_permit", p, f) for p, f in zip(people, permits, strict=True)
    ]
    before = officer.request_access(
        receipts[0].subject, ["residence_permit"], "T1", "school_enrolment"
    )
    assert before.decision == "granted"
    old = load_x25519_private_key(custodian_key_path(home, ORG))
    rows_before = stored_rows(home, ORG)
    assert len(rows_before) >= 12  # 3 records x 4 tiers

    rotation = admin.rotate_custodian_key(ORG, batch_size=2)

    new = load_x25519_private_key(custodian_key_path(home, ORG))
    assert rotation.org == ORG
    assert rotation.old_key_id == CustodianKeyRing(old).current_id
    assert rotation.new_key_id == CustodianKeyRing(new).current_id != rotation.old_key_id
    assert rotation.resealed == len(rows_before)
    assert not rotation.resumed
    assert rotation.finished_at >= rotation.started_at
    assert not previous_key_path(home, ORG).exists()
    rows_after = stored_rows(home, ORG)
    assert [(r, t) for r, t, _, _ in rows_after] == [(r, t) for r, t, _, _ in rows_before]
    for (_, _, sealed_before, _), (_, _, sealed, kid) in zip(rows_before, rows_after, strict=True):
        assert kid == rotation.new_key_id
        assert open_sealed_key(sealed, new) == open_sealed_key(sealed_before, old)
        with pytest.raises(DecryptionError):
            open_sealed_key(sealed, old)  # the old key opens nothing in the store

    for receipt, permit in zip(receipts, permits, strict=True):
        after = officer.request_access(
            receipt.subject, ["residence_permit"], "T1", "school_enrolment"
        )
        assert after.decision == "granted"
        assert after.granted[0].fields == up_to("residence_permit", permit, "T1")

    # A record registered after the rotation is sealed to the new key, and released.
    person = new_person()
    permit = record("residence_permit", person)
    receipt = registrar.put_record("residence_permit", person, permit)
    fresh = [row for row in stored_rows(home, ORG) if row[0] == receipt.record_id]
    assert len(fresh) == 4
    for _, _, sealed, _ in fresh:
        open_sealed_key(sealed, new)
        with pytest.raises(DecryptionError):
            open_sealed_key(sealed, old)
    later = officer.request_access(receipt.subject, ["residence_permit"], "T1", "school_enrolment")
    assert later.granted[0].fields == up_to("residence_permit", permit, "T1")

    # Rotating again needs nothing from the first rotation's old key.
    again = admin.rotate_custodian_key(ORG)
    assert again.old_key_id == rotation.new_key_id
    assert again.resealed == len(stored_rows(home, ORG))


def _raw_rotation(home: Path, url: str, name: str, org: str) -> httpx.Response:
    signer = Client.from_home(home, name, gateway_url=url).operations.identity
    call = Call("POST", f"/v1/departments/{org}/custodian-key/rotation", body={})
    prepared = prepare(call, base_url=url, identity=signer, now=datetime.now(UTC))
    return httpx.request(
        prepared.method, prepared.url, headers=prepared.headers, content=prepared.content
    )


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("officer.publicsecurity.sz1", "not_admin"),
        (REGISTRAR, "not_admin"),
        ("admin.education", "not_department_admin"),
        ("auditor.audit.sz1", "not_admin"),
    ],
)
def test_only_an_admin_of_the_department_may_rotate(
    home: Path, gateway_url: str, name: str, code: str
) -> None:
    key_before = custodian_key_path(home, ORG).read_bytes()
    rows_before = stored_rows(home, ORG)

    response = _raw_rotation(home, gateway_url, name, ORG)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == 403
    with pytest.raises(PermissionDenied):
        client(home, gateway_url, name).rotate_custodian_key(ORG)
    assert custodian_key_path(home, ORG).read_bytes() == key_before
    assert not previous_key_path(home, ORG).exists()
    assert stored_rows(home, ORG) == rows_before


def test_unknown_department_is_404_problem(home: Path, gateway_url: str) -> None:
    response = _raw_rotation(home, gateway_url, "admin.publicsecurity", "Nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unknown_org"
    with pytest.raises(NotFound):
        client(home, gateway_url, "admin.publicsecurity").rotate_custodian_key("Nowhere")


def test_rotate_custodian_cli_prints_json_and_fails_in_one_line(
    home: Path, gateway_url: str
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        [
            "keys",
            "rotate-custodian",
            "--as",
            "admin.housing",
            "--home",
            str(home),
            "--gateway",
            gateway_url,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["org"] == "Housing"
    assert (
        out["new_key_id"]
        == CustodianKeyRing(load_x25519_private_key(custodian_key_path(home, "Housing"))).current_id
    )
    refused = runner.invoke(
        cli_app,
        [
            "keys",
            "rotate-custodian",
            "--as",
            "registrar.housing.sz1",
            "--home",
            str(home),
            "--gateway",
            gateway_url,
        ],
    )
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error [not_admin]")


def test_officer_key_rotation_seals_later_grants_to_the_new_key_only(
    home: Path, gateway_url: str
) -> None:
    name = "officer.education.cd1"
    key_file = custodian_key_path(home, ORG).parents[2] / "Education" / "identities" / name
    old = load_x25519_private_key(key_file / "x25519.key")
    stale = client(home, gateway_url, name)  # still holds the old key

    result = CliRunner().invoke(
        cli_app,
        [
            "keys",
            "rotate-encryption",
            "--as",
            name,
            "--home",
            str(home),
            "--gateway",
            gateway_url,
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    new = load_x25519_private_key(key_file / "x25519.key")
    assert new != old
    assert load_x25519_private_key(key_file / "x25519.key.previous") == old
    assert not (key_file / "x25519.key.next").exists()
    assert (key_file / "x25519.key").stat().st_mode & 0o077 == 0
    assert out["new_key_id"] != out["old_key_id"]
    assert out["block_number"] > 0

    registrar = client(home, gateway_url, "registrar.publicsecurity.cd1")
    person = new_person()
    permit = record("residence_permit", person, issuing_city_code="510100")
    receipt = registrar.put_record("residence_permit", person, permit)
    officer = client(home, gateway_url, name)  # loads the new key from the home
    granted = officer.request_access(
        receipt.subject, ["residence_permit"], "T1", "school_enrolment"
    )
    assert granted.decision == "granted"
    assert granted.granted[0].fields == up_to("residence_permit", permit, "T1")
    for grant in granted.raw["grants"]:
        for tier in grant["tiers"]:
            sealed = _b64decode(tier["sealed_key"], "sealed_key", granted.tx_id)
            open_sealed_key(sealed, new)
            with pytest.raises(DecryptionError):
                open_sealed_key(sealed, old)
    # A client still holding the old key is told its key no longer matches.
    with pytest.raises(ClientError) as caught:
        stale.fetch_access(granted.tx_id)
    assert caught.value.code == "recipient_key_mismatch"


def test_rotate_encryption_refuses_an_identity_without_an_encryption_key_in_one_line(
    home: Path, gateway_url: str
) -> None:
    result = CliRunner().invoke(
        cli_app,
        [
            "keys",
            "rotate-encryption",
            "--as",
            "admin.education",
            "--home",
            str(home),
            "--gateway",
            gateway_url,
        ],
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error [no_encryption_key]")
    assert "Traceback" not in result.output
