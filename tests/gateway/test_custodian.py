"""Key custodians release a tier key only against a committed, valid, permitting event (I2).

A real network commits a real access request (through the service's two
legs, signed with the officer's own key); the custodian is then shown that
transaction as the ledger holds it, and as a forger would like it to be:
invalidated, edited, someone else's, expired, pointing at other ciphertext,
for an officer without a registered key. Only the genuine, live one
releases anything, and every release is logged before it leaves.
"""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.serialization import Encoding

from chaincode.caller import certificate_fingerprint
from chaincode.ledger import ENC_KEY, RECORD_VERSION, sequence_key
from crypto.consortium import Consortium
from crypto.envelope import AssociatedData, decrypt_tier, open_sealed_key
from crypto.identity import Identity
from gateway.custodian import (
    RELEASE_FORMAT,
    Custodians,
    GrantExpired,
    GrantRequired,
    KeyNotRegistered,
    KeyReleaseRefused,
    ReleaseLog,
    release_log_path,
)
from gateway.errors import GatewayError
from gateway.schemas import AmendmentInput, RecordInput
from gateway.service import releases as releases_module
from gateway.service.core import GatewayService
from gateway.service.ledger import CommittedTransaction, composite_key
from gateway.settings import GatewaySettings
from network.engine.committer import channel_config_from
from network.fabric.configtx import with_revocation_list
from network.fabric.transactions import parse_envelope
from network.fabric.validator import ChannelConfig
from policies.catalogue import Catalogue
from tests.gateway.test_app_support import (
    ShiftedClock,
    SignedClient,
    copy_home,
    identity_number,
    residence_permit,
    submit_in_process,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

OFFICER = "officer.education.sz1"
TTL = timedelta(minutes=15)
SKEW = timedelta(minutes=5)


@dataclass
class World:
    service: GatewayService
    consortium: Consortium
    clock: ShiftedClock
    home: Path
    granted_tx: str
    denied_tx: str
    record_id: str

    def identity(self, name: str) -> Identity:
        return self.consortium.identity(name)

    def custodians(self, ledger: Any) -> Custodians:
        return Custodians(
            home=self.home,
            custodian_keys={"PublicSecurity": self.consortium.custodian_key("PublicSecurity")},
            stores=self.service.stores,
            ledger=ledger,
            grant_ttl=TTL,
            max_skew=SKEW,
        )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("custodian"))
    clock = ShiftedClock()
    service = await GatewayService.start(GatewaySettings(home=home), clock=clock)
    consortium = Consortium.load(home)
    try:
        registrar = consortium.identity("registrar.publicsecurity.sz1")
        number = identity_number(11)
        draft = await service.records.draft(
            registrar,
            RecordInput(
                record_type="residence_permit",
                subject_identity_number=number,
                fields=residence_permit(number),
                record_id="rp-custodian-1",
            ),
            now=service.now(),
        )
        await submit_in_process(service, registrar, draft.function, draft.argument)
        officer = SignedClient("http://unused", consortium.identity(OFFICER), clock)
        granted = await submit_in_process(
            service,
            officer.identity,
            "RequestAccess",
            officer.access_document(
                draft.subject, tier="T1", purpose="school_enrolment", record_ids=["rp-custodian-1"]
            ),
        )
        denied = await submit_in_process(
            service,
            officer.identity,
            "RequestAccess",
            officer.access_document(
                draft.subject, tier="T3", purpose="school_enrolment", record_ids=["rp-custodian-1"]
            ),
        )
        yield World(service, consortium, clock, home, granted, denied, "rp-custodian-1")
    finally:
        await service.aclose()


class Forged:
    """The real ledger, except for what a test overrides."""

    def __init__(
        self, ledger: Any, *, committed: Any = None, state: Any = None, channel: Any = None
    ) -> None:
        self.ledger = ledger
        self._committed = committed
        self._state = state
        self._channel = channel

    def committed(self, tx_id: str) -> CommittedTransaction | None:
        real = self.ledger.committed(tx_id)
        result: CommittedTransaction | None = self._committed(real) if self._committed else real
        return result

    def state(self, key: str) -> bytes | None:
        real = self.ledger.state(key)
        value: bytes | None = self._state(key, real) if self._state else real
        return value

    def states(self, keys: list[str]) -> list[bytes | None]:
        return [self.state(key) for key in keys]

    def states_at(self, keys: list[str]) -> tuple[int, list[bytes | None]]:
        return int(self.ledger.height), self.states(keys)

    def channel_at(self, height: int) -> ChannelConfig:
        real: ChannelConfig = self.ledger.channel_at(height)
        return self._channel(height, real) if self._channel else real


def _decided(world: World, tx_id: str) -> Any:
    tx = world.service.ledger.committed(tx_id)
    assert tx is not None
    return tx.transaction.timestamp


async def test_genuine_grant_releases_exactly_the_granted_tiers(world: World) -> None:
    custodians = world.custodians(world.service.ledger)
    officer = world.identity(OFFICER)
    log = ReleaseLog(release_log_path(world.home, "PublicSecurity"))
    before = len(list(log.entries()))
    grant = custodians.verify(world.granted_tx, officer, world.clock())
    assert [(g.record_id, g.tiers) for g in grant.granted] == [(world.record_id, ("T0", "T1"))]
    recipient, released = custodians.release(grant, world.clock())
    assert recipient == world.consortium.encryption_public_key(OFFICER)
    assert [r.tier for r in released] == ["T0", "T1"]
    private = world.consortium.encryption_key(OFFICER)
    for tier in released:
        key = open_sealed_key(tier.sealed_key, private)
        blob = custodians.blob(tier.content_address, officer, world.clock())
        ad = AssociatedData(world.record_id, 1, "residence_permit", tier.tier)
        assert json.loads(decrypt_tier(key, blob, ad))
    entries = list(log.entries())[before:]
    assert [(e["tx_id"], e["tier"]) for e in entries] == [
        (world.granted_tx, "T0"),
        (world.granted_tx, "T1"),
    ]
    for entry in entries:
        assert set(entry) == {
            "format",
            "released_at",
            "org",
            "tx_id",
            "block_number",
            "record_id",
            "version",
            "tier",
            "content_address",
            "officer_msp_id",
            "officer_fingerprint",
            "recipient_key_sha256",
            "expires_at",
            "ledger_height",
        }
        assert entry["format"] == RELEASE_FORMAT
        assert entry["block_number"] < entry["ledger_height"] <= world.service.ledger.height
        assert entry["officer_fingerprint"] == certificate_fingerprint(officer.certificate)
        assert entry["recipient_key_sha256"] == hashlib.sha256(recipient).hexdigest()


async def test_a_denial_releases_nothing(world: World) -> None:
    custodians = world.custodians(world.service.ledger)
    grant = custodians.verify(world.denied_tx, world.identity(OFFICER), world.clock())
    assert grant.granted == ()
    assert grant.event["decision"] == "denied"


async def test_non_valid_transaction_is_refused(world: World) -> None:
    invalid = Forged(world.service.ledger, committed=lambda tx: replace(tx, validation_code=11))
    with pytest.raises(KeyReleaseRefused, match="MVCC_READ_CONFLICT"):
        world.custodians(invalid).verify(world.granted_tx, world.identity(OFFICER), world.clock())


def _edited(tx: CommittedTransaction, old: bytes, new: bytes, occurrence: int | None) -> Any:
    envelope = tx.transaction.envelope
    if occurrence is None:
        return replace(tx, transaction=parse_envelope(envelope.replace(old, new), strict=False))
    start = -1
    for _ in range(occurrence + 1):
        start = envelope.index(old, start + 1)
    edited = envelope[:start] + new + envelope[start + len(old) :]
    return replace(tx, transaction=parse_envelope(edited, strict=False))


async def test_edited_block_is_refused(world: World) -> None:
    # Widen the grant to T2 everywhere in the stored transaction: the creator's
    # signature over the payload no longer verifies.
    old, new = b'"tiers":["T0","T1"]', b'"tiers":["T0","T2"]'
    forged = Forged(world.service.ledger, committed=lambda tx: _edited(tx, old, new, None))
    with pytest.raises(KeyReleaseRefused, match="does not verify"):
        world.custodians(forged).verify(world.granted_tx, world.identity(OFFICER), world.clock())


async def test_event_that_differs_from_the_written_state_is_refused(world: World) -> None:
    # A forger holding the officer's key re-signs a payload whose event (but
    # not the state write) grants T2: the two must be the same bytes.
    officer = world.identity(OFFICER)
    old, new = b'"tiers":["T0","T1"]', b'"tiers":["T0","T2"]'

    def resigned(tx: CommittedTransaction) -> Any:
        edited = _edited(tx, old, new, 1).transaction
        from fabric_protos.common import common_pb2

        envelope = common_pb2.Envelope(
            payload=edited.payload, signature=officer.sign(edited.payload)
        ).SerializeToString()
        return replace(tx, transaction=parse_envelope(envelope, strict=False))

    forged = Forged(world.service.ledger, committed=resigned)
    with pytest.raises(KeyReleaseRefused, match="differs from the state"):
        world.custodians(forged).verify(world.granted_tx, officer, world.clock())


async def test_someone_elses_grant_does_not_exist(world: World) -> None:
    with pytest.raises(GatewayError) as raised:
        world.custodians(world.service.ledger).verify(
            world.granted_tx, world.identity("officer.education.cd1"), world.clock()
        )
    assert raised.value.code == "access_event_not_found"
    assert raised.value.status == 404


async def test_grant_expires_after_the_ttl(world: World) -> None:
    custodians = world.custodians(world.service.ledger)
    officer = world.identity(OFFICER)
    decided = _decided(world, world.granted_tx)
    grant = custodians.verify(world.granted_tx, officer, decided + TTL - timedelta(seconds=1))
    assert grant.expires_at == decided + TTL
    with pytest.raises(GrantExpired):
        custodians.verify(world.granted_tx, officer, decided + TTL)
    with pytest.raises(KeyReleaseRefused, match="future"):
        custodians.verify(world.granted_tx, officer, decided - SKEW - timedelta(seconds=1))


async def test_blob_grants_follow_releases_and_expire(world: World) -> None:
    custodians = world.custodians(world.service.ledger)
    officer = world.identity(OFFICER)
    now = world.clock()
    grant = custodians.verify(world.granted_tx, officer, now)
    _, released = custodians.release(grant, now)
    address = released[1].content_address
    assert custodians.blob(address, officer, now)
    with pytest.raises(GrantRequired):
        custodians.blob(address, world.identity("officer.education.cd1"), now)
    # A restarted gateway rebuilds the index from the release log.
    restarted = Custodians(
        home=world.home,
        custodian_keys={"PublicSecurity": world.consortium.custodian_key("PublicSecurity")},
        stores=world.service.stores,
        ledger=world.service.ledger,
        grant_ttl=TTL,
        max_skew=SKEW,
        now=now,
    )
    assert restarted.blob(address, officer, now) == custodians.blob(address, officer, now)
    with pytest.raises(GrantExpired):
        custodians.blob(address, officer, grant.expires_at)


async def test_key_must_open_the_ciphertext_the_ledger_names(world: World) -> None:
    version_key = composite_key(RECORD_VERSION, world.record_id, sequence_key(1))

    def elsewhere(key: str, real: bytes | None) -> bytes | None:
        if key != version_key or real is None:
            return real
        record = json.loads(real)
        record["tiers"]["T1"]["content_address"] = "f" * 64
        return json.dumps(record).encode()

    forged = Forged(world.service.ledger, state=elsewhere)
    custodians = world.custodians(forged)
    grant = custodians.verify(world.granted_tx, world.identity(OFFICER), world.clock())
    log = ReleaseLog(release_log_path(world.home, "PublicSecurity"))
    before = len(list(log.entries()))
    with pytest.raises(KeyReleaseRefused, match="another ciphertext"):
        custodians.release(grant, world.clock())
    assert len(list(log.entries())) == before  # nothing released, nothing logged


async def test_officer_without_registered_key_gets_nothing(world: World) -> None:
    officer = world.identity(OFFICER)
    registry_key = composite_key(
        ENC_KEY, officer.msp_id, certificate_fingerprint(officer.certificate)
    )
    forged = Forged(
        world.service.ledger, state=lambda key, real: None if key == registry_key else real
    )
    custodians = world.custodians(forged)
    grant = custodians.verify(world.granted_tx, officer, world.clock())
    with pytest.raises(KeyNotRegistered):
        custodians.release(grant, world.clock())


async def test_amendment_draft_is_a_new_version(world: World) -> None:
    registrar = world.identity("registrar.publicsecurity.sz1")
    number = identity_number(11)
    fields = residence_permit(number)
    fields["status"] = "expired"
    draft = await world.service.records.draft(
        registrar,
        AmendmentInput(
            record_type="residence_permit", subject_identity_number=number, fields=fields
        ),
        now=world.service.now(),
        amend=world.record_id,
    )
    assert (draft.function, draft.version) == ("AmendRecord", 2)
    await submit_in_process(world.service, registrar, draft.function, draft.argument)
    # The grant was for version 1: it still releases version 1's keys, never version 2's.
    custodians = world.custodians(world.service.ledger)
    grant = custodians.verify(world.granted_tx, world.identity(OFFICER), world.clock())
    _, released = custodians.release(grant, world.clock())
    assert {r.version for r in released} == {1}
    assert {r.content_address for r in released}.isdisjoint(
        t["content_address"] for t in draft.tiers.values()
    )


async def test_release_log_group_commit_keeps_every_line(tmp_path: Path) -> None:
    log = ReleaseLog(tmp_path / "Org" / "releases.jsonl")
    entries = [
        [{"format": RELEASE_FORMAT, "tx_id": f"{n:064x}", "tier": t} for t in ("T0", "T1")]
        for n in range(60)
    ]
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(log.append, entries))
    written = list(log.entries())
    assert len(written) == 120
    assert sorted((e["tx_id"], e["tier"]) for e in written) == sorted(
        (e["tx_id"], e["tier"]) for batch in entries for e in batch
    )
    assert (tmp_path / "Org" / "releases.jsonl").stat().st_mode & 0o777 == 0o600


async def test_release_log_failure_reaches_every_waiter(tmp_path: Path) -> None:
    blocked = tmp_path / "releases.jsonl"
    blocked.mkdir()  # a directory where the log should be: every write fails
    log = ReleaseLog(blocked)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(log.append, [{"format": RELEASE_FORMAT}]) for _ in range(8)]
        for future in futures:
            with pytest.raises(IsADirectoryError):
                future.result()


async def test_a_release_the_log_cannot_record_releases_nothing(
    world: World, tmp_path: Path
) -> None:
    custodians = Custodians(
        home=tmp_path,
        custodian_keys={"PublicSecurity": world.consortium.custodian_key("PublicSecurity")},
        stores=world.service.stores,
        ledger=world.service.ledger,
        grant_ttl=TTL,
        max_skew=SKEW,
    )
    release_log_path(tmp_path, "PublicSecurity").mkdir(parents=True)  # every append fails
    officer = world.identity(OFFICER)
    grant = custodians.verify(world.granted_tx, officer, world.clock())
    with pytest.raises(GatewayError) as refused:
        custodians.release(grant, world.clock())
    assert (refused.value.code, refused.value.status) == ("release_log_failed", 503)
    assert refused.value.extensions["tx_id"] == world.granted_tx
    # No grant to fetch the ciphertexts either: the index only learns of logged releases.
    store = world.service.stores.store("PublicSecurity")
    for tier in ("T0", "T1"):
        address = store.get_tier_key(record_id=world.record_id, version=1, tier=tier).address
        with pytest.raises(GrantRequired):
            custodians.blob(address, officer, world.clock())


async def test_one_department_log_failing_releases_nothing_of_any_department(
    world: World, tmp_path: Path
) -> None:
    # A grant over two departments' records: every log line is written before any grant or
    # key takes effect, so Housing's log failing leaves PublicSecurity's ciphertext unfetchable.
    registrar = world.identity("registrar.housing.sz1")
    rental = Catalogue.load_default().schema("housing_rental", 1)["examples"][0]
    number = identity_number(11)
    draft = await world.service.records.draft(
        registrar,
        RecordInput(
            record_type="housing_rental",
            subject_identity_number=number,
            fields=dict(rental),
            record_id="hr-custodian-1",
        ),
        now=world.service.now(),
    )
    await submit_in_process(world.service, registrar, draft.function, draft.argument)
    officer = SignedClient("http://unused", world.identity(OFFICER), world.clock)
    both = await submit_in_process(
        world.service,
        officer.identity,
        "RequestAccess",
        officer.access_document(
            draft.subject,
            tier="T1",
            purpose="school_enrolment",
            record_ids=[world.record_id, "hr-custodian-1"],
        ),
    )
    custodians = Custodians(
        home=tmp_path,
        custodian_keys={
            org: world.consortium.custodian_key(org) for org in ("PublicSecurity", "Housing")
        },
        stores=world.service.stores,
        ledger=world.service.ledger,
        grant_ttl=TTL,
        max_skew=SKEW,
    )
    grant = custodians.verify(both, officer.identity, world.clock())
    assert sorted(g.owner_org for g in grant.granted) == ["Housing", "PublicSecurity"]
    first, last = grant.granted  # released in this order: the last department's log fails
    release_log_path(tmp_path, last.owner_org).mkdir(parents=True)
    with pytest.raises(GatewayError) as refused:
        custodians.release(grant, world.clock())
    assert refused.value.code == "release_log_failed"
    logged = list(ReleaseLog(release_log_path(tmp_path, first.owner_org)).entries())
    assert [line["tier"] for line in logged] == list(first.tiers)  # logged, never usable
    address = (
        world.service.stores.store(first.owner_org)
        .get_tier_key(record_id=first.record_id, version=1, tier="T0")
        .address
    )
    with pytest.raises(GrantRequired):
        custodians.blob(address, officer.identity, world.clock())


async def test_release_log_writes_every_byte_of_a_short_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.write may write less than asked (a nearly full disk) without raising.
    real_write = releases_module.os.write
    monkeypatch.setattr(releases_module.os, "write", lambda fd, data: real_write(fd, data[:7]))
    log = ReleaseLog(tmp_path / "releases.jsonl")
    lines = [{"format": RELEASE_FORMAT, "tier": f"T{i}", "pad": "x" * 50} for i in range(3)]
    log.append(lines)
    assert list(log.entries()) == lines


async def test_an_append_after_a_line_cut_short_starts_a_line_of_its_own(tmp_path: Path) -> None:
    # A crash (or a failed truncation) left half a line: the next release must stay readable.
    log = ReleaseLog(tmp_path / "releases.jsonl")
    first = {"format": RELEASE_FORMAT, "tier": "T0"}
    log.append([first])
    with log.path.open("ab") as stream:
        stream.write(b'{"format": "accessledger-key-rel')
    second = {"format": RELEASE_FORMAT, "tier": "T1"}
    log.append([second])
    assert list(log.entries()) == [first, second]
    assert log.path.read_bytes().count(b"\n") == 3


async def test_a_release_log_write_that_fails_midway_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ReleaseLog(tmp_path / "releases.jsonl")
    first = {"format": RELEASE_FORMAT, "tier": "T0"}
    log.append([first])
    before = log.path.read_bytes()
    real_write = releases_module.os.write
    calls = 0

    def fill_the_disk(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data[:10])

    monkeypatch.setattr(releases_module.os, "write", fill_the_disk)
    with pytest.raises(OSError, match="No space left"):
        log.append([{"format": RELEASE_FORMAT, "tier": "T1"}])
    assert log.path.read_bytes() == before
    monkeypatch.undo()
    second = {"format": RELEASE_FORMAT, "tier": "T2"}
    log.append([second])
    assert list(log.entries()) == [first, second]


def _revoking(world: World, identity: Identity, channel: ChannelConfig) -> ChannelConfig:
    """``channel`` with a CRL from ``identity``'s CA naming its certificate."""
    now = world.clock()
    crl = world.consortium.certificate_authority(identity.msp_id).revocation_list(
        {identity.certificate.serial_number: now}, now=now
    )
    updated = with_revocation_list(channel.config, identity.msp_id, crl.public_bytes(Encoding.PEM))
    return channel_config_from(channel.channel_id, updated)


async def test_a_certificate_revoked_at_the_releases_snapshot_gets_nothing(world: World) -> None:
    # The revocation is in the snapshot the custodian reads (the gateway's membership view
    # may not have caught up yet): no tier key and no blob leaves, and nothing is logged.
    officer = world.identity(OFFICER)
    honest = world.custodians(world.service.ledger)
    grant = honest.verify(world.granted_tx, officer, world.clock())
    _, released = honest.release(grant, world.clock())  # live grant, certificate in good standing
    seen: list[int] = []

    def revoked(height: int, real: ChannelConfig) -> ChannelConfig:
        seen.append(height)
        return _revoking(world, officer, real)

    custodians = world.custodians(Forged(world.service.ledger, channel=revoked))
    custodians.grants = honest.grants  # the blob grants the release above recorded
    log = ReleaseLog(release_log_path(world.home, "PublicSecurity"))
    before = len(list(log.entries()))
    now = world.clock()
    with pytest.raises(GatewayError) as refused:
        custodians.release(custodians.verify(world.granted_tx, officer, now), now)
    assert (refused.value.code, refused.value.status) == ("certificate_revoked", 401)
    assert refused.value.extensions["tx_id"] == world.granted_tx
    with pytest.raises(GatewayError) as blob_refused:
        custodians.blob(released[0].content_address, officer, world.clock())
    assert blob_refused.value.code == "certificate_revoked"
    assert seen == [world.service.ledger.height] * 2
    assert len(list(log.entries())) == before
    # Another department's CRL does not touch this officer.
    registrar = world.identity("registrar.publicsecurity.sz1")
    other = world.custodians(
        Forged(world.service.ledger, channel=lambda _, real: _revoking(world, registrar, real))
    )
    other.release(other.verify(world.granted_tx, officer, world.clock()), world.clock())


async def test_a_certificate_the_channel_no_longer_accepts_gets_nothing(world: World) -> None:
    # Past the officer certificate's validity the MSP refuses it, as the endorsers would:
    # the custodian releases nothing and logs nothing, whatever the grant says.
    officer = world.identity(OFFICER)
    custodians = world.custodians(world.service.ledger)
    grant = custodians.verify(world.granted_tx, officer, world.clock())
    log = ReleaseLog(release_log_path(world.home, "PublicSecurity"))
    before = len(list(log.entries()))
    expired = officer.certificate.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(GatewayError) as refused:
        custodians.release(grant, expired)
    assert (refused.value.code, refused.value.status) == ("certificate_invalid", 401)
    assert "not a valid EducationMSP identity" in refused.value.message
    assert len(list(log.entries())) == before
