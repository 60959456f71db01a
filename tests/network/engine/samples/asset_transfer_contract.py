"""Asset transfer, written against fabric-chaincode-python's contract API.

The contract-API twin of :mod:`.asset_transfer_shim`: the same transactions
and the same JSON, as methods of a ``Contract`` taking the transaction context
first. The contract API converts the string arguments to the annotated types
and turns a raised exception into an error response.
"""

from __future__ import annotations

import json
from typing import Any

from fabric_chaincode_python.fabric_contract_api import Contract, TransactionContextInterface

INDEX = "owner~id"


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


async def _read(stub: Any, asset_id: str) -> dict[str, Any]:
    data = await stub.get_state(asset_id)
    if not data:
        raise ValueError(f"the asset {asset_id} does not exist")
    asset: dict[str, Any] = json.loads(data)
    return asset


class AssetTransferContract(Contract):
    """``asset-transfer-basic`` as a Python contract."""

    Name = "AssetTransfer"

    def get_evaluate_transactions(self) -> list[str]:
        return ["ReadAsset", "GetAllAssets", "GetAssetsByOwner", "GetAssetHistory"]

    async def CreateAsset(
        self,
        ctx: TransactionContextInterface,
        asset_id: str,
        color: str,
        size: int,
        owner: str,
        value: int,
    ) -> str:
        stub = ctx.get_stub()
        if await stub.get_state(asset_id):
            raise ValueError(f"the asset {asset_id} already exists")
        asset = {
            "ID": asset_id,
            "Color": color,
            "Size": size,
            "Owner": owner,
            "AppraisedValue": value,
        }
        await stub.put_state(asset_id, _dump(asset))
        await stub.put_state(stub.create_composite_key(INDEX, [owner, asset_id]), b"\x00")
        stub.set_event("CreateAsset", _dump(asset))
        return _dump(asset)

    async def ReadAsset(self, ctx: TransactionContextInterface, asset_id: str) -> str:
        return _dump(await _read(ctx.get_stub(), asset_id))

    async def UpdateAsset(
        self,
        ctx: TransactionContextInterface,
        asset_id: str,
        color: str,
        size: int,
        owner: str,
        value: int,
    ) -> str:
        stub = ctx.get_stub()
        old = await _read(stub, asset_id)
        asset = {
            "ID": asset_id,
            "Color": color,
            "Size": size,
            "Owner": owner,
            "AppraisedValue": value,
        }
        await stub.put_state(asset_id, _dump(asset))
        if old["Owner"] != owner:
            await stub.delete_state(stub.create_composite_key(INDEX, [old["Owner"], asset_id]))
            await stub.put_state(stub.create_composite_key(INDEX, [owner, asset_id]), b"\x00")
        return _dump(asset)

    async def DeleteAsset(self, ctx: TransactionContextInterface, asset_id: str) -> None:
        stub = ctx.get_stub()
        asset = await _read(stub, asset_id)
        await stub.delete_state(asset_id)
        await stub.delete_state(stub.create_composite_key(INDEX, [asset["Owner"], asset_id]))

    async def TransferAsset(
        self, ctx: TransactionContextInterface, asset_id: str, new_owner: str
    ) -> str:
        stub = ctx.get_stub()
        asset = await _read(stub, asset_id)
        old_owner: str = asset["Owner"]
        asset["Owner"] = new_owner
        await stub.put_state(asset_id, _dump(asset))
        await stub.delete_state(stub.create_composite_key(INDEX, [old_owner, asset_id]))
        await stub.put_state(stub.create_composite_key(INDEX, [new_owner, asset_id]), b"\x00")
        stub.set_event("TransferAsset", _dump({"ID": asset_id, "From": old_owner, "To": new_owner}))
        return old_owner

    async def GetAllAssets(self, ctx: TransactionContextInterface) -> str:
        iterator = await ctx.get_stub().get_state_by_range("", "")
        return _dump([json.loads(kv.value) async for kv in iterator])

    async def GetAssetsByOwner(self, ctx: TransactionContextInterface, owner: str) -> str:
        stub = ctx.get_stub()
        assets = []
        async for kv in await stub.get_state_by_partial_composite_key(INDEX, [owner]):
            _, (_, asset_id) = stub.split_composite_key(kv.key)
            assets.append(await _read(stub, asset_id))
        return _dump(assets)

    async def GetAssetsPage(
        self,
        ctx: TransactionContextInterface,
        start_key: str,
        end_key: str,
        page_size: int,
        bookmark: str,
    ) -> str:
        iterator = await ctx.get_stub().get_state_by_range_with_pagination(
            start_key, end_key, page_size, bookmark
        )
        records = [json.loads(kv.value) async for kv in iterator]
        metadata = getattr(iterator, "metadata", None)
        return _dump(
            {
                "records": records,
                "fetchedRecordsCount": metadata.fetched_records_count if metadata else len(records),
                "bookmark": metadata.bookmark if metadata else "",
            }
        )

    async def GetAssetHistory(self, ctx: TransactionContextInterface, asset_id: str) -> str:
        history = []
        async for mod in await ctx.get_stub().get_history_for_key(asset_id):
            history.append(
                {
                    "txId": mod.tx_id,
                    "isDelete": mod.is_delete,
                    "timestamp": mod.timestamp.seconds,
                    "value": None if mod.is_delete else json.loads(mod.value),
                }
            )
        return _dump(history)
