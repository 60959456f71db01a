"""Erasure in-process: reconciling after a crash, and audit replay against a lying chaincode.

The gateway stops between the EraseRecord commit and the shred (simulated by
committing EraseRecord through the service's two legs without the route's
commit watch); the next start's reconcile finds the record erased on the
ledger with its tier keys still stored, and destroys them -- once.

Then the peers run a modified contract (the attacker controls the endorsers):
it lets another department's registrar erase, and grants a record that was
erased. Every signature on that ledger is valid; audit replay re-checks the
erasure's authorisation and the decision from the blocks alone and names both.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from audit.findings import FindingKind
from chaincode import access as chaincode_access
from chaincode import authz as chaincode_authz
from crypto.consortium import Consortium
from gateway.errors import GatewayError
from gateway.schemas import RecordInput
from gateway.service import erasure as erasure_service
from gateway.service.core import GatewayService
from gateway.service.erasure import (
    ledger_erasure,
    ledger_erasures,
    reconcile_erasures,
    shred,
)
from gateway.service.records import Draft
from gateway.service.transactions import build_signed_proposal, sign_transaction
from gateway.settings import GatewaySettings
from gateway.store import RecordErasedError, StoreBusyError
from tests.audit.conftest import replay
from tests.gateway.test_app_support import (
    ShiftedClock,
    SignedClient,
    copy_home,
    identity_number,
    residence_permit,
    submit_in_process,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
REGISTRAR = "registrar.publicsecurity.sz1"
OFFICER = "officer.education.sz1"


@dataclass
class World:
    service: GatewayService
    consortium: Consortium


async def _register(world: World, record_id: str, sequence: int) -> Draft:
    registrar = world.consortium.identity(REGISTRAR)
    number = identity_number(sequence)
    draft = await world.service.records.draft(
        registrar,
        RecordInput(
            record_type="residence_permit",
            subject_identity_number=number,
            fields=residence_permit(number),
            record_id=record_id,
        ),
        now=world.service.now(),
    )
    await submit_in_process(world.service, registrar, draft.function, draft.argument)
    return draft


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("erasure"))
    service = await GatewayService.start(GatewaySettings(home=home), clock=ShiftedClock())
    try:
        yield World(service, Consortium.load(home))
    finally:
        await service.aclose()


async def test_reconcile_shreds_what_a_crash_left_and_only_that(world: World) -> None:
    service = world.service
    store = service.stores.store("PublicSecurity")
    draft = await _register(world, "rp-crash-1", 41)
    addresses = [str(ref["content_address"]) for ref in draft.tiers.values()]
    await _register(world, "rp-live-1", 42)
    assert shred(service.ledger, service.stores, "rp-crash-1") is None  # not erased on the ledger
    assert len(store.list_tier_keys(record_id="rp-crash-1")) == 4

    registrar = world.consortium.identity(REGISTRAR)
    tx_id = await submit_in_process(service, registrar, "EraseRecord", {"record_id": "rp-crash-1"})
    erasure = ledger_erasure(service.ledger, "rp-crash-1")
    assert erasure is not None
    assert erasure.tx_id == tx_id
    assert [e.record_id for e in ledger_erasures(service.ledger)] == ["rp-crash-1"]
    # Committed without the route's watch: the store still holds everything.
    assert len(store.list_tier_keys(record_id="rp-crash-1")) == 4

    assert await reconcile_erasures(service.ledger, service.stores) == ["rp-crash-1"]
    with pytest.raises(RecordErasedError):
        store.list_tier_keys(record_id="rp-crash-1")
    for address in addresses:
        with pytest.raises(RecordErasedError):
            store.get_blob(address)
    tombstone = store.get_erasure(record_id="rp-crash-1")
    assert tombstone is not None
    assert tx_id in tombstone.erased_by
    assert tombstone.erased_at == erasure.erased_at
    assert len(store.list_tier_keys(record_id="rp-live-1")) == 4  # untouched

    # Idempotent: nothing left to do; shredding again returns the same tombstone.
    assert await reconcile_erasures(service.ledger, service.stores) == []
    again = shred(service.ledger, service.stores, "rp-crash-1")
    assert again is not None
    assert again.erased_at == tombstone.erased_at


async def test_replay_names_erasures_and_grants_a_lying_chaincode_endorsed(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = world.service
    draft = await _register(world, "rp-forged-1", 43)
    intruder = world.consortium.identity("registrar.housing.sz1")
    # Honest contract: refused, nothing written.
    with pytest.raises(GatewayError) as refused:
        await submit_in_process(service, intruder, "EraseRecord", {"record_id": "rp-forged-1"})
    assert (refused.value.status, refused.value.code) == (403, "not_owner_department")

    monkeypatch.setattr(chaincode_authz, "require_eraser", lambda *args: None)
    forged_erase = await submit_in_process(
        service, intruder, "EraseRecord", {"record_id": "rp-forged-1"}
    )
    monkeypatch.setattr(chaincode_access, "is_erased", lambda record: False)
    officer = SignedClient("http://unused", world.consortium.identity(OFFICER), ShiftedClock())
    document = officer.access_document(
        draft.subject, tier="T1", purpose="school_enrolment", record_ids=["rp-forged-1"]
    )
    # The lying grant commits, but the custodian reads the erasure on the ledger and
    # releases nothing, although the store was not shredded (no route watched the commit).
    with pytest.raises(GatewayError) as withheld:
        await submit_in_process(service, officer.identity, "RequestAccess", document)
    assert (withheld.value.status, withheld.value.code) == (410, "record_erased")
    forged_grant = str(withheld.value.extensions["tx_id"])
    monkeypatch.undo()

    export = tmp_path / "ledger.bin"
    service.network.export(export)
    report = replay(export, stores=service.home / "stores").report
    assert not report.ok
    # The lying erasure was never shredded: reported for follow-up, not as a finding.
    assert report.extra["offchain"]["shred_pending"] == 1
    located = {(f.tx_id, f.kind) for f in report.findings}
    assert located == {
        (forged_erase, FindingKind.ACCESS_EVENT),
        (forged_grant, FindingKind.DECISION),
    }
    messages = [f.message for f in report.findings]
    assert any(
        "EraseRecord of rp-forged-1: the creator is not an identity of the owner department"
        " PublicSecurity" in m
        for m in messages
    )
    assert any(
        "record rp-forged-1: recorded granted, but the record was erased before the request" in m
        for m in messages
    )


async def test_a_grant_from_before_the_erasure_releases_nothing_even_before_the_shred(
    world: World,
) -> None:
    """I2: the custodian reads the erasure from the ledger, not only from its store."""
    service = world.service
    draft = await _register(world, "rp-erase-before-shred", 61)
    officer = SignedClient("http://unused", world.consortium.identity(OFFICER), ShiftedClock())
    document = officer.access_document(
        draft.subject, tier="T1", purpose="school_enrolment", record_ids=[draft.record_id]
    )
    grant = await submit_in_process(service, officer.identity, "RequestAccess", document)
    first = await service.access(officer.identity, grant)
    [released] = [r for r in first.grants if r.tiers]
    address = released.tiers[0].content_address
    assert service.blob(officer.identity, address)  # fetchable under the live grant
    # EraseRecord committed through the generic service path: nothing shreds the store here.
    registrar = world.consortium.identity(REGISTRAR)
    await submit_in_process(service, registrar, "EraseRecord", {"record_id": draft.record_id})
    assert _store_keys(service, draft.record_id) > 0  # the store still holds the keys

    with pytest.raises(GatewayError) as refused:
        await service.access(officer.identity, grant)
    assert (refused.value.status, refused.value.code) == (410, "record_erased")
    with pytest.raises(GatewayError) as gone:
        service.blob(officer.identity, address)
    assert (gone.value.status, gone.value.code) == (410, "record_erased")


def _store_keys(service: GatewayService, record_id: str) -> int:
    return len(service.stores.store("PublicSecurity").list_tier_keys(record_id=record_id))


async def test_a_shred_that_fails_after_its_commit_is_retried_without_a_restart(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = world.service
    store = service.stores.store("PublicSecurity")
    await _register(world, "rp-retry-1", 43)
    attempts: list[str] = []
    real_erase = store.erase_record

    def busy_once(**kwargs: Any) -> Any:
        attempts.append(kwargs["record_id"])
        if len(attempts) == 1:
            raise StoreBusyError("another writer held the store's lock too long; try again")
        return real_erase(**kwargs)

    monkeypatch.setattr(store, "erase_record", busy_once)
    monkeypatch.setattr(erasure_service, "RETRY_DELAYS", (0.05, 0.05))
    registrar = world.consortium.identity(REGISTRAR)
    raw = build_signed_proposal(
        registrar,
        channel=service.ledger.channel,
        chaincode=service.ledger.chaincode,
        function="EraseRecord",
        argument={"record_id": "rp-retry-1"},
        now=service.now(),
    )
    prepared = await service.propose(registrar, base64.b64encode(raw).decode(), {"EraseRecord"})
    erasure_service.shred_when_committed(
        service.ledger, service.stores, prepared.tx_id, "rp-retry-1", wait=30
    )
    signature = sign_transaction(registrar, base64.b64decode(prepared.transaction))
    await service.commit(registrar, prepared.tx_id, base64.b64encode(signature).decode())

    assert attempts == ["rp-retry-1"]  # the commit-time shred failed: the keys are still there
    assert len(store.list_tier_keys(record_id="rp-retry-1")) == 4
    for _ in range(100):  # the retry runs in the background; give it up to 5 s
        try:
            store.list_tier_keys(record_id="rp-retry-1")
        except RecordErasedError:
            break
        await asyncio.sleep(0.05)
    assert attempts == ["rp-retry-1", "rp-retry-1"]
    with pytest.raises(RecordErasedError):
        store.list_tier_keys(record_id="rp-retry-1")
