"""``RecordService``: how store failures during a registration reach the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crypto.consortium import Consortium
from gateway.errors import GatewayError
from gateway.schemas import RecordInput
from gateway.service.core import GatewayService
from gateway.settings import GatewaySettings
from gateway.store import StoreBusyError
from tests.gateway.test_app_support import copy_home, identity_number, residence_permit


@pytest_asyncio.fixture
async def service(demo_home: Path, tmp_path: Path) -> AsyncIterator[GatewayService]:
    started = await GatewayService.start(GatewaySettings(home=copy_home(demo_home, tmp_path)))
    try:
        yield started
    finally:
        await started.aclose()


async def test_a_busy_store_is_a_retryable_503(
    service: GatewayService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(*_: Any, **__: Any) -> Any:
        raise StoreBusyError("another writer held the store's lock too long; try again")

    monkeypatch.setattr(service.stores.store("PublicSecurity"), "put_record_tiers", busy)
    registrar = Consortium.load(service.home).identity("registrar.publicsecurity.sz1")
    number = identity_number(12)
    record = RecordInput(
        record_type="residence_permit",
        subject_identity_number=number,
        fields=residence_permit(number),
        record_id="rp-busy-1",
    )
    with pytest.raises(GatewayError) as raised:
        await service.records.draft(registrar, record, now=service.now())
    assert (raised.value.code, raised.value.status) == ("store_busy", 503)
