"""The asset-transfer sample chaincode, end to end through submit and evaluate.

Both Fabric Python styles run unmodified: the low-level ``fabric_shim``
chaincode and the contract API version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crypto.consortium import Consortium
from network.engine.errors import EndorseError, EvaluateError
from network.engine.network import EmbeddedNetwork
from tests.network.engine.samples.asset_transfer_contract import AssetTransferContract
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode
from tests.network.engine.test_pipeline import CC, make_home

SAMPLES: dict[str, Any] = {
    "shim": AssetTransferChaincode,
    "contract": AssetTransferContract,
}


@pytest.mark.parametrize("style", sorted(SAMPLES))
async def test_asset_transfer_end_to_end(tmp_path: Path, style: str) -> None:
    home = make_home(tmp_path)
    members = Consortium.load(home)
    registrar = members.identity("officer.publicsecurity.sz1")
    auditor = next(i for i in members.identities() if i.role == "auditor")
    async with EmbeddedNetwork.open(home, chaincodes={CC: SAMPLES[style]}) as network:
        gw = network.gateway(registrar)

        async def query(function: str, *args: str) -> Any:
            return json.loads(await gw.evaluate(CC, function, list(args)))

        created = []
        for asset_id, owner, value in (("a1", "tom", 100), ("a2", "tom", 200), ("a3", "ann", 300)):
            created.append(
                await gw.submit(CC, "CreateAsset", [asset_id, "blue", "5", owner, str(value)])
            )
        assert json.loads(created[0].payload)["AppraisedValue"] == 100
        with pytest.raises(EndorseError, match="already exists"):
            await gw.submit(CC, "CreateAsset", ["a1", "red", "1", "x", "1"])

        assert await query("ReadAsset", "a1") == {
            "AppraisedValue": 100,
            "Color": "blue",
            "ID": "a1",
            "Owner": "tom",
            "Size": 5,
        }
        updated = await gw.submit(CC, "UpdateAsset", ["a1", "red", "7", "tom", "150"])
        transferred = await gw.submit(CC, "TransferAsset", ["a2", "ann"])
        assert transferred.payload == b"tom"  # the previous owner

        everything = await query("GetAllAssets")
        assert [a["ID"] for a in everything] == ["a1", "a2", "a3"]  # range query, key order
        assert [a["ID"] for a in await query("GetAssetsByOwner", "ann")] == ["a2", "a3"]
        assert await query("GetAssetsByOwner", "tom") == [await query("ReadAsset", "a1")]

        history = await query("GetAssetHistory", "a1")
        assert [h["txId"] for h in history] == [updated.tx_id, created[0].tx_id]
        assert history[0]["value"]["Color"] == "red"

        page = await query("GetAssetsPage", "", "", "2", "")
        assert [a["ID"] for a in page["records"]] == ["a1", "a2"]
        rest = await query("GetAssetsPage", "", "", "2", page["bookmark"])
        assert [a["ID"] for a in rest["records"]] == ["a3"]

        deleted = await network.submit(auditor, CC, "DeleteAsset", ["a3"])
        assert deleted.validation_code_name == "VALID"
        with pytest.raises(EvaluateError, match="does not exist"):
            await query("ReadAsset", "a3")
        assert [a["ID"] for a in await query("GetAllAssets")] == ["a1", "a2"]
        assert (await query("GetAssetHistory", "a3"))[0]["isDelete"] is True

        height = network.height
        await query("GetAllAssets")
        assert network.height == height  # evaluate orders nothing
