"""Asset transfer, written against fabric-chaincode-python's low-level shim.

The same shape as Fabric's ``asset-transfer-basic`` sample, in the style of a
``fabric_shim`` chaincode: ``invoke`` reads the function name and string
parameters from the stub and returns ``success(payload)`` or
``error(message)``. Besides the basic operations it keeps an ``owner~id``
composite-key index (value ``\\x00``: an empty value would be a delete) to
list an owner's assets with a partial-composite-key query, and exposes the
key history and a paginated range query. JSON is written with sorted keys so
that every endorser produces the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_chaincode_python.fabric_shim.response import error, success

INDEX = "owner~id"


class AssetError(Exception):
    """A business-rule failure reported to the client as an error response."""


def _dump(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


async def _read(stub: Any, asset_id: str) -> dict[str, Any]:
    data = await stub.get_state(asset_id)
    if not data:
        raise AssetError(f"the asset {asset_id} does not exist")
    asset: dict[str, Any] = json.loads(data)
    return asset


async def _collect(iterator: Any) -> list[dict[str, Any]]:
    return [json.loads(kv.value) async for kv in iterator]


async def create_asset(
    stub: Any, asset_id: str, color: str, size: str, owner: str, value: str
) -> bytes:
    if await stub.get_state(asset_id):
        raise AssetError(f"the asset {asset_id} already exists")
    asset = {
        "ID": asset_id,
        "Color": color,
        "Size": int(size),
        "Owner": owner,
        "AppraisedValue": int(value),
    }
    await stub.put_state(asset_id, _dump(asset))
    await stub.put_state(stub.create_composite_key(INDEX, [owner, asset_id]), b"\x00")
    stub.set_event("CreateAsset", _dump(asset))
    return _dump(asset)


async def read_asset(stub: Any, asset_id: str) -> bytes:
    return _dump(await _read(stub, asset_id))


async def update_asset(
    stub: Any, asset_id: str, color: str, size: str, owner: str, value: str
) -> bytes:
    old = await _read(stub, asset_id)
    asset = {
        "ID": asset_id,
        "Color": color,
        "Size": int(size),
        "Owner": owner,
        "AppraisedValue": int(value),
    }
    await stub.put_state(asset_id, _dump(asset))
    if old["Owner"] != owner:
        await stub.delete_state(stub.create_composite_key(INDEX, [old["Owner"], asset_id]))
        await stub.put_state(stub.create_composite_key(INDEX, [owner, asset_id]), b"\x00")
    return _dump(asset)


async def delete_asset(stub: Any, asset_id: str) -> bytes:
    asset = await _read(stub, asset_id)
    await stub.delete_state(asset_id)
    await stub.delete_state(stub.create_composite_key(INDEX, [asset["Owner"], asset_id]))
    return b""


async def transfer_asset(stub: Any, asset_id: str, new_owner: str) -> bytes:
    asset = await _read(stub, asset_id)
    old_owner = asset["Owner"]
    asset["Owner"] = new_owner
    await stub.put_state(asset_id, _dump(asset))
    await stub.delete_state(stub.create_composite_key(INDEX, [old_owner, asset_id]))
    await stub.put_state(stub.create_composite_key(INDEX, [new_owner, asset_id]), b"\x00")
    stub.set_event("TransferAsset", _dump({"ID": asset_id, "From": old_owner, "To": new_owner}))
    return old_owner.encode()


async def get_all_assets(stub: Any) -> bytes:
    return _dump(await _collect(await stub.get_state_by_range("", "")))


async def get_assets_by_owner(stub: Any, owner: str) -> bytes:
    iterator = await stub.get_state_by_partial_composite_key(INDEX, [owner])
    assets = []
    async for kv in iterator:
        _, (_, asset_id) = stub.split_composite_key(kv.key)
        assets.append(await _read(stub, asset_id))
    return _dump(assets)


async def get_assets_page(
    stub: Any, start_key: str, end_key: str, page_size: str, bookmark: str
) -> bytes:
    iterator = await stub.get_state_by_range_with_pagination(
        start_key, end_key, int(page_size), bookmark
    )
    records = await _collect(iterator)
    # The Python shim does not surface the page metadata; the engine's iterator does.
    metadata = getattr(iterator, "metadata", None)
    return _dump(
        {
            "records": records,
            "fetchedRecordsCount": metadata.fetched_records_count if metadata else len(records),
            "bookmark": metadata.bookmark if metadata else "",
        }
    )


async def get_asset_history(stub: Any, asset_id: str) -> bytes:
    history = []
    async for mod in await stub.get_history_for_key(asset_id):
        history.append(
            {
                "txId": mod.tx_id,
                "isDelete": mod.is_delete,
                "timestamp": mod.timestamp.seconds,
                "value": None if mod.is_delete else json.loads(mod.value),
            }
        )
    return _dump(history)


FUNCTIONS: dict[str, Callable[..., Awaitable[bytes]]] = {
    "CreateAsset": create_asset,
    "ReadAsset": read_asset,
    "UpdateAsset": update_asset,
    "DeleteAsset": delete_asset,
    "TransferAsset": transfer_asset,
    "GetAllAssets": get_all_assets,
    "GetAssetsByOwner": get_assets_by_owner,
    "GetAssetsPage": get_assets_page,
    "GetAssetHistory": get_asset_history,
}


class AssetTransferChaincode(Chaincode):
    """The low-level chaincode: ``invoke`` dispatches on the function name."""

    @staticmethod
    async def init(stub: Any) -> Any:
        return success(b"")

    @staticmethod
    async def invoke(stub: Any) -> Any:
        function, params = stub.get_function_and_parameters()
        handler = FUNCTIONS.get(function)
        if handler is None:
            return error(f"unknown function {function}")
        try:
            return success(await handler(stub, *params))
        except (AssetError, TypeError, ValueError) as exc:
            return error(str(exc))
