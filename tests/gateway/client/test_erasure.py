"""Erasure end to end over real HTTP: DELETE /v1/records/{id}, crypto-shredding, audit replay.

A registrar of the owning department erases a record: the ledger records it
(EraseRecord), the gateway destroys the tier keys and ciphertexts before the
commit is answered, later access requests are denied ``record_erased``, the
citizen still sees every access, and an auditor's replay -- also of the
off-chain stores -- finds nothing. A tombstone forged into a store copy for a
record the ledger never erased is named.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import Consortium
from gateway.client import AsyncClient, Client, ClientError, Conflict, NotFound, PermissionDenied
from gateway.client.flows import Flow
from gateway.client.http import Call
from gateway.client.models import RecordReceipt
from gateway.service.releases import release_log_path
from tests.gateway.client.people import new_person, record

Clients = Callable[[str], Client]
REGISTRAR = "registrar.publicsecurity.sz1"
OFFICER = "officer.education.sz1"
REASON = "the subject asked for deletion (PIPL Art. 47)"


@pytest.fixture(scope="module")
def client(home: Path, gateway_url: str) -> Iterator[Clients]:
    opened: dict[str, Client] = {}

    def make(name: str) -> Client:
        if name not in opened:
            opened[name] = Client.from_home(home, name, gateway_url=gateway_url)
        return opened[name]

    yield make
    for each in opened.values():
        each.close()


def _permit(client: Clients) -> RecordReceipt:
    person = new_person()
    return client(REGISTRAR).put_record(
        "residence_permit", person, record("residence_permit", person)
    )


def _blob(address: str) -> Flow[bytes]:
    data: bytes = yield Call("GET", f"/v1/blobs/{address}", expect="bytes")
    return data


def _store_rows(home: Path, record_id: str) -> tuple[int, int]:
    """(tier keys, tombstones) the PublicSecurity store holds for ``record_id``."""
    with sqlite3.connect(
        f"{(home / 'stores' / 'PublicSecurity.sqlite').as_uri()}?mode=ro", uri=True
    ) as conn:
        keys = conn.execute("SELECT COUNT(*) FROM tier_key WHERE record_id = ?", (record_id,))
        stones = conn.execute("SELECT COUNT(*) FROM tombstone WHERE record_id = ?", (record_id,))
        return int(keys.fetchone()[0]), int(stones.fetchone()[0])


def test_owner_registrar_erases_and_the_payload_is_gone(
    client: Clients, home: Path, home_consortium: Consortium
) -> None:
    receipt = _permit(client)
    certificate = home_consortium.identity("citizen.c1").cert_pem().decode("ascii")
    client("registrar.civilaffairs.sz1").register_citizen(certificate, receipt.subject)
    officer = client(OFFICER)
    before = officer.request_access(
        receipt.subject, ["residence_permit"], "T1", "school_enrolment", inline_ciphertexts=False
    )
    assert [r.record_id for r in before.granted] == [receipt.record_id]
    address = receipt.tiers["T1"]["content_address"]
    assert officer.run(_blob(address))  # readable under the live grant

    erased = client(REGISTRAR).erase_record(receipt.record_id, reason=REASON)
    assert erased.record_id == receipt.record_id
    assert erased.owner_org == "PublicSecurity"
    assert erased.reason_hash == hashlib.sha256(REASON.encode()).hexdigest()
    assert _store_rows(home, receipt.record_id) == (0, 1)

    # The grant is still live, but the ciphertext and keys are gone: 410 problems.
    with pytest.raises(ClientError) as gone:
        officer.run(_blob(address))
    assert (gone.value.status, gone.value.code) == (410, "record_erased")
    assert gone.value.problem["code"] == "record_erased"
    with pytest.raises(ClientError) as release:
        officer.fetch_access(before.tx_id, inline_ciphertexts=False)
    assert (release.value.status, release.value.code) == (410, "record_erased")

    # A new request is committed (I3) but grants nothing for the erased record, and says why.
    later = officer.request_access(receipt.subject, ["residence_permit"], "T1", "school_enrolment")
    assert later.decision == "denied"
    assert later.granted == []
    [denied] = later.denied
    assert (denied.record_id, denied.reason) == (receipt.record_id, "record_erased")

    # Accountability outlives the payload: the citizen sees both accesses.
    accesses = {a["event_id"] for a in client("citizen.c1").all_my_accesses()}
    assert {before.tx_id, later.tx_id} <= accesses

    # I1: only the reason's hash is on the ledger.
    chain = b"".join(block.SerializeToString() for block in client("auditor.audit.sz1").blocks())
    assert erased.reason_hash is not None
    assert erased.reason_hash.encode() in chain
    assert REASON.encode() not in chain


def test_department_admin_of_the_owner_may_erase(client: Clients, home: Path) -> None:
    receipt = _permit(client)
    erased = client("admin.publicsecurity").erase_record(receipt.record_id)
    assert erased.reason_hash is None
    assert _store_rows(home, receipt.record_id) == (0, 1)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("registrar.housing.sz1", "not_owner_department"),
        ("officer.publicsecurity.sz1", "erase_forbidden"),
    ],
)
def test_others_may_not_erase_and_nothing_changes(
    client: Clients, home: Path, name: str, code: str
) -> None:
    receipt = _permit(client)
    height = client(REGISTRAR).ledger_info(refresh=True).height
    with pytest.raises(PermissionDenied) as refused:
        client(name).erase_record(receipt.record_id)
    assert (refused.value.status, refused.value.code) == (403, code)
    assert client(REGISTRAR).ledger_info(refresh=True).height == height
    assert _store_rows(home, receipt.record_id) == (4, 0)
    granted = client(OFFICER).request_access(
        receipt.subject, ["residence_permit"], "T1", "school_enrolment"
    )
    assert [r.record_id for r in granted.granted] == [receipt.record_id]


def test_erasing_twice_is_a_conflict_and_unknown_records_are_not_found(client: Clients) -> None:
    receipt = _permit(client)
    client(REGISTRAR).erase_record(receipt.record_id)
    with pytest.raises(Conflict) as twice:
        client(REGISTRAR).erase_record(receipt.record_id)
    assert (twice.value.status, twice.value.code) == (409, "record_erased")
    with pytest.raises(NotFound) as unknown:
        client(REGISTRAR).erase_record("rec-never-registered")
    assert (unknown.value.status, unknown.value.code) == (404, "record_not_found")


def test_proposal_must_name_the_record_in_the_path(client: Clients, home: Path) -> None:
    receipt = _permit(client)
    registrar = client(REGISTRAR)
    flow = registrar.operations.transact(
        "/v1/records/some-other-record",
        "EraseRecord",
        lambda: {"record_id": receipt.record_id},
        method="DELETE",
    )
    with pytest.raises(ClientError) as refused:
        registrar.run(flow)
    assert refused.value.code == "proposal_invalid"
    assert _store_rows(home, receipt.record_id) == (4, 0)


def _copy_stores(home: Path, target: Path) -> Path:
    """A consistent copy of the live stores (SQLite's backup API, WAL included)."""
    target.mkdir()
    for path in sorted((home / "stores").glob("*.sqlite")):
        with sqlite3.connect(path) as source, sqlite3.connect(target / path.name) as copy:
            source.backup(copy)
    return target


def _replay(home: Path, gateway_url: str, stores: Path, report: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["audit", "replay", "--gateway", gateway_url, "--as", "auditor.audit.sz1",
         "--identity-home", str(home), "--workers", "0", "--stores", str(stores),
         "--report", str(report)],
    )  # fmt: skip
    replayed: dict[str, Any] = json.loads(report.read_text())
    replayed["exit_code"] = result.exit_code
    return replayed


def test_replay_after_erasures_is_clean_and_a_forged_tombstone_is_named(
    client: Clients, home: Path, gateway_url: str, tmp_path: Path
) -> None:
    erased = _permit(client)
    client(REGISTRAR).erase_record(erased.record_id, reason=REASON)
    live = _permit(client)
    stores = _copy_stores(home, tmp_path / "stores")

    clean = _replay(home, gateway_url, stores, tmp_path / "clean.json")
    assert clean["findings"] == []
    assert clean["exit_code"] == 0
    assert clean["offchain"]["erased"] >= 4
    assert "shred_pending" not in clean["offchain"]  # every erasure was shredded at commit

    # Forge what erase_record would leave for a record the ledger never erased.
    addresses = [ref["content_address"] for ref in live.tiers.values()]
    with sqlite3.connect(stores / "PublicSecurity.sqlite") as conn:
        conn.execute("DELETE FROM tier_key WHERE record_id = ?", (live.record_id,))
        for address in addresses:
            conn.execute("DELETE FROM blob WHERE address = ?", (address,))
            conn.execute(
                "INSERT INTO erased_blob (address, record_id) VALUES (?, ?)",
                (address, live.record_id),
            )
        conn.execute(
            "INSERT INTO tombstone (record_id, erased_at, erased_by, tier_keys_destroyed,"
            " blobs_destroyed) VALUES (?, '2026-11-29 12:00:00.000000', 'forger', 4, 4)",
            (live.record_id,),
        )
    forged = _replay(home, gateway_url, stores, tmp_path / "forged.json")
    assert forged["exit_code"] != 0
    messages = [f["message"] for f in forged["findings"]]
    assert {f["kind"] for f in forged["findings"]} == {"offchain_blob_missing"}
    assert len(messages) == 1 + len(addresses)
    assert all(live.record_id in m and "no EraseRecord" in m for m in messages)
    assert not any(erased.record_id in m for m in messages)


def test_a_key_release_after_the_erasure_is_named(
    client: Clients, home: Path, gateway_url: str, tmp_path: Path
) -> None:
    """A custodian log line releasing a key of a record after its EraseRecord is a finding."""
    receipt = _permit(client)
    granted = client(OFFICER).request_access(
        receipt.subject, ["residence_permit"], "T1", "school_enrolment"
    )
    assert [r.record_id for r in granted.granted] == [receipt.record_id]
    client(REGISTRAR).erase_record(receipt.record_id)
    log = release_log_path(home, "PublicSecurity")
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    genuine = [r for r in lines if r["record_id"] == receipt.record_id]
    assert genuine  # released while the grant was live and the record not yet erased
    stores = _copy_stores(home, tmp_path / "stores")
    honest = tmp_path / "honest.jsonl"
    honest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    clean = _replay_with_log(home, gateway_url, stores, honest, tmp_path / "clean.json")
    assert clean["findings"] == []

    # A release checked against state from before the erasure's block is legitimate, even
    # if its wall-clock time is past the erasure transaction's timestamp (the erasure was
    # proposed, not yet committed).
    height = client("auditor.audit.sz1").ledger_info().height
    assert genuine[0]["ledger_height"] < height
    racing = {**genuine[0], "released_at": _ledger_now()}
    # The same release as if the custodian had served it against state holding the erasure.
    late = {**racing, "ledger_height": height}
    forged = tmp_path / "forged.jsonl"
    forged.write_text(honest.read_text() + json.dumps(racing) + "\n" + json.dumps(late) + "\n")
    report = _replay_with_log(home, gateway_url, stores, forged, tmp_path / "forged.json")
    messages = [f["message"] for f in report["findings"]]
    assert len(messages) == 1, messages
    assert "released after the record was erased" in messages[0]
    assert receipt.record_id in messages[0]
    assert f"line {len(lines) + 2}:" in messages[0]  # the late line, not the racing one


def _ledger_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _replay_with_log(
    home: Path, gateway_url: str, stores: Path, log: Path, report: Path
) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["audit", "replay", "--gateway", gateway_url, "--as", "auditor.audit.sz1",
         "--identity-home", str(home), "--workers", "0", "--stores", str(stores),
         "--key-releases", str(log), "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    replayed: dict[str, Any] = json.loads(report.read_text())
    return replayed


async def test_async_client_erases(client: Clients, home: Path, gateway_url: str) -> None:
    receipt = _permit(client)
    async with AsyncClient.from_home(home, REGISTRAR, gateway_url=gateway_url) as registrar:
        erased = await registrar.erase_record(receipt.record_id, reason=REASON)
        assert erased.record_id == receipt.record_id
        assert erased.reason_hash == hashlib.sha256(REASON.encode()).hexdigest()
        with pytest.raises(Conflict):
            await registrar.erase_record(receipt.record_id)
    assert _store_rows(home, receipt.record_id) == (0, 1)
