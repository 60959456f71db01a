"""ChannelMembership: the channel config decides who the gateway serves, with the MSPs' own rules.

Real channel config (the demo home's genesis block) and real certificates.
Beyond membership and CRLs, a caller's certificate must be one its MSP
accepts: a certificate of another department presented under this one's MSP
ID chains to no root of that MSP and is refused before any handler runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from crypto.consortium import Consortium
from gateway.auth.errors import CertificateInvalidError, CertificateUnknownError
from gateway.service.membership import ChannelMembership
from network.engine.network import EmbeddedNetwork
from tests.gateway.test_app_support import copy_home
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode


@pytest.fixture
async def membership(demo_home: Path, tmp_path: Path) -> ChannelMembership:
    home = copy_home(demo_home, tmp_path)
    network = EmbeddedNetwork.open(home, chaincodes={"accessledger": AssetTransferChaincode})
    try:
        return ChannelMembership(network.channel)
    finally:
        await network.aclose()


def test_members_pass_and_borrowed_or_unknown_msp_ids_do_not(
    membership: ChannelMembership, consortium: Consortium
) -> None:
    officer = consortium.identity("officer.education.sz1")
    membership.check(officer)  # a genuine member
    membership.check(officer)  # and again, from the cache

    borrowed = dataclasses.replace(consortium.identity("officer.tax.sz1"), msp_id="EducationMSP")
    with pytest.raises(CertificateInvalidError, match="not a valid EducationMSP identity"):
        membership.check(borrowed)

    stranger = dataclasses.replace(officer, msp_id="TransportMSP")
    with pytest.raises(CertificateUnknownError, match="not a member of the channel"):
        membership.check(stranger)
