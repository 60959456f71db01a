"""Channel config updates (``network.fabric.configtx``) against Fabric itself and the demo channel.

The oracle is the Fabric 2.5.16 fixture ledger: blocks 1 and 2 are genuine
config updates (anchor peers for Org1MSP and Org2MSP, each signed by its
org's admin), so applying each block's ``last_update`` to the previous
config must give exactly the config Fabric committed, and our
``compute_update`` must give exactly the update Fabric's tooling wrote. The
rest runs on a fresh demo consortium with keys we hold.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fabric_protos.common import configtx_pb2, policies_pb2

from crypto.consortium import Consortium
from network.fabric import blocks
from network.fabric.configblock import (
    batch_settings_from_config,
    genesis_block_for_home,
    policy_from_rule,
)
from network.fabric.configtx import (
    ConfigUpdateError,
    ConfigUpdateUnauthorizedError,
    StaleConfigUpdateError,
    apply_update,
    compute_update,
    config_update_envelope,
    config_update_from_envelope,
    sign_config_update,
    with_organization,
    with_revocation_list,
)
from network.fabric.errors import MSPError
from network.fabric.policy import EndorsementPolicies
from network.fabric.transactions import parse_envelope
from network.fabric.validator import ChannelConfig, code_name, validate_block
from network.topology import Topology
from tests.fabric_fixtures import FABRIC_FIXTURES
from tests.network.configtx_support import (
    CHANNEL,
    DEPARTMENTS,
    MAJORITY,
    NewDepartment,
    config_transaction,
    crl_pem,
    endorsement_rule,
    new_department,
    signed_update,
)

# --- the Fabric fixture -----------------------------------------------------------------------


def fixture_block(number: int) -> Any:
    return blocks.parse_block((FABRIC_FIXTURES / "blocks" / f"{number:06d}.block").read_bytes())


def fixture_update(number: int) -> tuple[ChannelConfig, Any, Any, datetime]:
    """(config before block ``number``, its update envelope, the committed config, tx time)."""
    before = ChannelConfig.from_block(fixture_block(number - 1))
    tx = parse_envelope(bytes(fixture_block(number).data.data[0]))
    assert tx.config_envelope is not None
    assert tx.timestamp is not None
    update = config_update_from_envelope(tx.config_envelope.last_update)
    return before, update, tx.config_envelope.config, tx.timestamp


@pytest.mark.parametrize("number", [1, 2])
def test_fabric_config_updates_reproduce_the_committed_config(number: int) -> None:
    before, update, committed, when = fixture_update(number)

    result = apply_update(before, update, now=when)

    assert result == committed
    assert result.sequence == before.sequence + 1 == number
    assert result.SerializeToString(deterministic=True) == committed.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize("number", [1, 2])
def test_compute_update_writes_the_update_fabric_wrote(number: int) -> None:
    before, update, committed, _ = fixture_update(number)

    computed = compute_update(before.channel_id, before.config, committed)

    assert computed == configtx_pb2.ConfigUpdate.FromString(update.config_update)


@pytest.mark.parametrize("number", [1, 2])
def test_fabric_update_without_its_admin_signature_is_refused(number: int) -> None:
    before, update, _, when = fixture_update(number)
    org = f"Org{number}MSP"
    stripped = configtx_pb2.ConfigUpdateEnvelope(config_update=update.config_update)

    with pytest.raises(ConfigUpdateUnauthorizedError) as refused:
        apply_update(before, stripped, now=when)

    assert f"/Channel/Application/{org}/Admins" in refused.value.message
    assert refused.value.code == "config_update_unauthorized"


def test_fabric_update_signed_by_the_other_orgs_admin_is_refused() -> None:
    before, update, _, when = fixture_update(1)
    _, org2_update, _, _ = fixture_update(2)
    borrowed = configtx_pb2.ConfigUpdateEnvelope(
        config_update=update.config_update, signatures=list(org2_update.signatures)
    )

    with pytest.raises(ConfigUpdateUnauthorizedError, match="Org1MSP/Admins"):
        apply_update(before, borrowed, now=when)


def test_a_committed_fabric_update_cannot_be_replayed() -> None:
    _, update, committed, when = fixture_update(1)
    after = ChannelConfig.from_config("mychannel", committed)

    with pytest.raises(StaleConfigUpdateError, match="Org1MSP at version 0; it is at version 1"):
        apply_update(after, update, now=when)


def test_an_update_for_another_channel_is_refused() -> None:
    before, update, _, when = fixture_update(1)
    elsewhere = ChannelConfig.from_config("otherchannel", before.config)

    with pytest.raises(ConfigUpdateError, match="for channel 'mychannel', not 'otherchannel'"):
        apply_update(elsewhere, update, now=when)


# --- the demo channel ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel(demo_home: Path, demo_now: datetime) -> ChannelConfig:
    genesis = genesis_block_for_home(
        Topology.load(demo_home / "network.yaml"), demo_home, now=demo_now
    )
    return ChannelConfig.from_block(genesis)


@pytest.fixture(scope="module")
def transport(tmp_path_factory: pytest.TempPathFactory, demo_now: datetime) -> NewDepartment:
    return new_department(tmp_path_factory.mktemp("transport"), now=demo_now)


@pytest.fixture
def now(demo_now: datetime) -> datetime:
    return demo_now + timedelta(hours=1)


def admins(consortium: Consortium, count: int) -> list[Any]:
    return [consortium.identity(f"admin.{org.lower()}") for org in DEPARTMENTS[:count]]


def with_transport(channel: ChannelConfig, transport: NewDepartment) -> Any:
    rule = endorsement_rule([f"{org}MSP" for org in DEPARTMENTS] + ["TransportMSP"])
    return with_organization(channel.config, transport.spec, transport.msp, endorsement_policy=rule)


def update_of(envelope: bytes) -> Any:
    return config_update_from_envelope(envelope)


def test_majority_of_department_admins_adds_a_department(
    channel: ChannelConfig, consortium: Consortium, transport: NewDepartment, now: datetime
) -> None:
    updated = with_transport(channel, transport)
    envelope = signed_update(
        channel.config,
        updated,
        admins(consortium, MAJORITY),
        creator=consortium.identity("admin.tax"),
        now=now,
    )

    result = apply_update(channel, update_of(envelope), now=now)

    assert result.sequence == 1
    application = result.channel_group.groups["Application"]
    assert application.version == 1
    assert application.groups["Transport"].version == 0
    assert application.policies["Endorsement"].version == 1
    assert application.policies["Endorsement"].policy == policy_from_rule(
        endorsement_rule([f"{org}MSP" for org in DEPARTMENTS] + ["TransportMSP"])
    )
    # Untouched elements keep their versions; the result differs from the edit only in versions.
    assert result.channel_group.groups["Orderer"] == channel.config.channel_group.groups["Orderer"]
    with pytest.raises(ConfigUpdateError, match="no differences"):
        compute_update(CHANNEL, updated, result)
    new_channel = ChannelConfig.from_config(CHANNEL, result)
    assert new_channel.msps.deserialize(transport.officer.serialized()).msp_id == "TransportMSP"
    assert batch_settings_from_config(result) == batch_settings_from_config(channel.config)


def test_too_few_admins_cannot_add_a_department(
    channel: ChannelConfig, consortium: Consortium, transport: NewDepartment, now: datetime
) -> None:
    envelope = signed_update(
        channel.config,
        with_transport(channel, transport),
        admins(consortium, MAJORITY - 1),
        creator=consortium.identity("admin.tax"),
        now=now,
    )

    with pytest.raises(ConfigUpdateUnauthorizedError) as refused:
        apply_update(channel, update_of(envelope), now=now)

    assert "/Channel/Application/Admins" in refused.value.message
    assert f"needs {MAJORITY} of {len(DEPARTMENTS)} sub-policies, {MAJORITY - 1} satisfied" in (
        refused.value.message
    )


def test_officers_are_not_admins(
    channel: ChannelConfig, consortium: Consortium, transport: NewDepartment, now: datetime
) -> None:
    officers = [
        next(i for i in consortium.identities(org=org) if i.kind == "officer")
        for org in DEPARTMENTS[:MAJORITY]
    ]
    envelope = signed_update(
        channel.config, with_transport(channel, transport), officers, creator=officers[0], now=now
    )

    with pytest.raises(ConfigUpdateUnauthorizedError, match="/Channel/Application/Admins"):
        apply_update(channel, update_of(envelope), now=now)


def test_admin_signatures_count_only_while_their_certificates_are_valid(
    channel: ChannelConfig, consortium: Consortium, transport: NewDepartment, now: datetime
) -> None:
    envelope = signed_update(
        channel.config,
        with_transport(channel, transport),
        admins(consortium, len(DEPARTMENTS)),
        creator=consortium.identity("admin.tax"),
        now=now,
    )
    expired = now + timedelta(days=3 * 365)  # demo certificates are valid for two years

    apply_update(channel, update_of(envelope), now=now)
    with pytest.raises(ConfigUpdateUnauthorizedError):
        apply_update(channel, update_of(envelope), now=expired)


def test_an_update_written_against_an_older_config_is_stale(
    channel: ChannelConfig,
    consortium: Consortium,
    transport: NewDepartment,
    now: datetime,
    tmp_path: Path,
) -> None:
    majority = admins(consortium, MAJORITY)
    water = new_department(tmp_path, org="Water", now=now)
    first = signed_update(
        channel.config, with_transport(channel, transport), majority, creator=majority[0], now=now
    )
    # Written against the same original config, applied after the first one.
    second = signed_update(
        channel.config,
        with_organization(
            channel.config,
            water.spec,
            water.msp,
            endorsement_policy="MAJORITY Endorsement",
        ),
        majority,
        creator=majority[0],
        now=now,
    )
    after_first = ChannelConfig.from_config(
        CHANNEL, apply_update(channel, update_of(first), now=now)
    )

    with pytest.raises(StaleConfigUpdateError, match="/Channel/Application at version 0"):
        apply_update(after_first, update_of(second), now=now)


def test_versions_must_move_by_exactly_one(
    channel: ChannelConfig, consortium: Consortium, now: datetime
) -> None:
    tax_admin = consortium.identity("admin.tax")
    updated = configtx_pb2.Config()
    updated.CopyFrom(channel.config)
    updated.channel_group.groups["Application"].groups["Tax"].values[
        "AnchorPeers"
    ].value = b"\x0a\x00"
    update = compute_update(CHANNEL, channel.config, updated)
    update.write_set.groups["Application"].groups["Tax"].values["AnchorPeers"].version += 1
    data = update.SerializeToString()
    envelope = config_update_envelope(
        CHANNEL, data, [sign_config_update(data, tax_admin)], creator=tax_admin, now=now
    )

    with pytest.raises(StaleConfigUpdateError, match="is at version 0; the update sets version 2"):
        apply_update(channel, update_of(envelope), now=now)


def test_an_update_that_changes_nothing_is_refused(
    channel: ChannelConfig, consortium: Consortium, now: datetime
) -> None:
    admin = consortium.identity("admin.tax")
    update = configtx_pb2.ConfigUpdate(channel_id=CHANNEL)
    update.read_set.version = 0
    update.write_set.version = 0
    data = update.SerializeToString()
    envelope = config_update_envelope(
        CHANNEL, data, [sign_config_update(data, admin)], creator=admin, now=now
    )

    with pytest.raises(ConfigUpdateError, match="changes nothing"):
        apply_update(channel, update_of(envelope), now=now)


def _without_tax_anchor_peer(channel: ChannelConfig) -> Any:
    updated = configtx_pb2.Config()
    updated.CopyFrom(channel.config)
    del updated.channel_group.groups["Application"].groups["Tax"].values["AnchorPeers"]
    return updated


def test_a_group_mod_policy_names_the_groups_own_policy(
    channel: ChannelConfig, consortium: Consortium, now: datetime
) -> None:
    # As in the fixture: a value added or removed changes the org group, whose 'Admins' is
    # the org's own /Channel/Application/Tax/Admins (not the Application group's MAJORITY).
    updated = _without_tax_anchor_peer(channel)
    tax_admin = consortium.identity("admin.tax")
    by_tax = signed_update(channel.config, updated, [tax_admin], creator=tax_admin, now=now)
    health_admin = consortium.identity("admin.health")
    by_health = signed_update(
        channel.config, updated, [health_admin], creator=health_admin, now=now
    )

    result = apply_update(channel, update_of(by_tax), now=now)
    assert result.channel_group.groups["Application"].groups["Tax"].version == 1
    assert "AnchorPeers" not in result.channel_group.groups["Application"].groups["Tax"].values
    assert result.channel_group.groups["Application"].version == 0
    with pytest.raises(ConfigUpdateUnauthorizedError, match="/Channel/Application/Tax/Admins"):
        apply_update(channel, update_of(by_health), now=now)


def test_an_absolute_mod_policy_is_looked_up_from_the_root(
    channel: ChannelConfig, consortium: Consortium, now: datetime
) -> None:
    # OrdererAddresses is governed by /Channel/Orderer/Admins, not by the channel's Admins.
    updated = configtx_pb2.Config()
    updated.CopyFrom(channel.config)
    addresses = updated.channel_group.values["OrdererAddresses"]
    assert addresses.mod_policy == "/Channel/Orderer/Admins"
    addresses.value = b"\n\x0e127.0.0.1:8050"
    departments = admins(consortium, len(DEPARTMENTS))
    orderer_admin = consortium.identity("admin.orderer")

    with pytest.raises(ConfigUpdateUnauthorizedError, match="needs /Channel/Orderer/Admins"):
        apply_update(
            channel,
            update_of(
                signed_update(channel.config, updated, departments, creator=departments[0], now=now)
            ),
            now=now,
        )
    result = apply_update(
        channel,
        update_of(
            signed_update(channel.config, updated, [orderer_admin], creator=orderer_admin, now=now)
        ),
        now=now,
    )
    assert result.channel_group.values["OrdererAddresses"].version == 1


def test_revocation_list_signed_by_the_org_admin_revokes_the_officer(
    channel: ChannelConfig, consortium: Consortium, now: datetime
) -> None:
    officer = consortium.identity("officer.tax.sz1")
    colleague = consortium.identity("officer.tax.cd1")
    ca = consortium.certificate_authority("Tax")
    updated = with_revocation_list(
        channel.config, "TaxMSP", crl_pem(ca, [officer.certificate], now)
    )
    tax_admin = consortium.identity("admin.tax")
    envelope = signed_update(channel.config, updated, [tax_admin], creator=tax_admin, now=now)

    result = ChannelConfig.from_config(CHANNEL, apply_update(channel, update_of(envelope), now=now))

    with pytest.raises(MSPError, match="revoked"):
        result.msps.deserialize(officer.serialized())
    assert result.msps.deserialize(colleague.serialized()).msp_id == "TaxMSP"
    channel.msps.deserialize(officer.serialized())  # the config in force is untouched


def test_revocation_lists_must_come_from_the_orgs_ca(
    channel: ChannelConfig, consortium: Consortium, now: datetime
) -> None:
    officer = consortium.identity("officer.tax.sz1")
    health_ca = consortium.certificate_authority("Health")

    with pytest.raises(ConfigUpdateError, match="not signed by a CA of TaxMSP"):
        with_revocation_list(
            channel.config, "TaxMSP", crl_pem(health_ca, [officer.certificate], now)
        )
    with pytest.raises(ConfigUpdateError, match="no MSP 'NopeMSP'"):
        with_revocation_list(channel.config, "NopeMSP", b"")
    with pytest.raises(ConfigUpdateError, match="not a PEM certificate revocation list"):
        with_revocation_list(channel.config, "TaxMSP", b"garbage")


def test_with_organization_refuses_members_and_unknown_endorsers(
    channel: ChannelConfig, transport: NewDepartment
) -> None:
    spec = transport.spec
    tax = type(spec)(name="Tax", msp_id="TransportMSP", domain=spec.domain, msp_dir=spec.msp_dir)
    taken = type(spec)(name="Transport2", msp_id="TaxMSP", domain=spec.domain, msp_dir=spec.msp_dir)

    with pytest.raises(ConfigUpdateError, match="'Tax' is already a member"):
        with_organization(
            channel.config, tax, transport.msp, endorsement_policy="MAJORITY Endorsement"
        )
    with pytest.raises(ConfigUpdateError, match="already used by /Channel/Application/Tax"):
        with_organization(
            channel.config, taken, transport.msp, endorsement_policy="MAJORITY Endorsement"
        )
    with pytest.raises(ConfigUpdateError, match="endorsement policy"):
        with_organization(
            channel.config, spec, transport.msp, endorsement_policy="OR('WaterMSP.peer')"
        )


# --- the validator ------------------------------------------------------------------------------


def _validate(channel: ChannelConfig, envelope: bytes) -> tuple[str, str]:
    block = blocks.new_block(1, b"\x00" * 32, [envelope])
    result = validate_block(
        block,
        channel=channel,
        policies=EndorsementPolicies(lambda name: None),
        committed_version=lambda ns, key: None,
        tx_id_exists=lambda tx_id: False,
    )
    return code_name(result.codes[0]), result.results[0].reason


def test_validator_accepts_exactly_the_config_its_update_makes(
    channel: ChannelConfig, consortium: Consortium, transport: NewDepartment, now: datetime
) -> None:
    orderer = consortium.identity("orderer0.orderer")
    updated = with_transport(channel, transport)
    update = signed_update(
        channel.config,
        updated,
        admins(consortium, MAJORITY),
        creator=consortium.identity("admin.tax"),
        now=now,
    )
    config = apply_update(channel, update_of(update), now=now)
    padded = configtx_pb2.Config()
    padded.CopyFrom(config)
    padded.channel_group.groups["Application"].policies["Admins"].policy.CopyFrom(
        policies_pb2.Policy(type=1, value=b"")
    )
    skipped = configtx_pb2.Config()
    skipped.CopyFrom(config)
    skipped.sequence = 2

    assert _validate(channel, config_transaction(config, update, orderer, now)) == ("VALID", "")
    code, reason = _validate(channel, config_transaction(padded, update, orderer, now))
    assert code == "INVALID_CONFIG_TRANSACTION"
    assert "not the result of applying its last_update" in reason
    code, reason = _validate(channel, config_transaction(skipped, update, orderer, now))
    assert (code, reason) == (
        "INVALID_CONFIG_TRANSACTION",
        "config currently at sequence 0, cannot apply sequence 2",
    )
    weak = signed_update(
        channel.config,
        updated,
        admins(consortium, 1),
        creator=consortium.identity("admin.tax"),
        now=now,
    )
    code, reason = _validate(channel, config_transaction(config, weak, orderer, now))
    assert code == "INVALID_CONFIG_TRANSACTION"
    assert "/Channel/Application/Admins" in reason
