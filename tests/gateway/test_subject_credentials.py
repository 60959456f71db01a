"""Finding the citizen credentials bound to a subject (whom notes are sealed to).

The demo ledger binds citizens through ``RegisterCitizen``, which indexes each
binding by subject; a ledger initialised before that index existed has no
``citizen_index`` mark and is read by scanning every binding. Both ways must
name the same credentials.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from chaincode.caller import certificate_fingerprint
from crypto.consortium import Consortium
from gateway.service import queries as queries_module
from gateway.service.core import GatewayService
from gateway.service.ledger import composite_key
from gateway.settings import GatewaySettings
from tests.gateway.test_app_support import (
    ShiftedClock,
    copy_home,
    identity_number,
    subject_of,
    submit_in_process,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
CITIZENS = ("citizen.c1", "citizen.c2", "citizen.c3")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def service(
    demo_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GatewayService]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("credentials"))
    started = await GatewayService.start(GatewaySettings(home=home), clock=ShiftedClock())
    try:
        yield started
    finally:
        await started.aclose()


async def _bound(
    service: GatewayService, consortium: Consortium
) -> dict[str, set[tuple[str, str]]]:
    """Bind c1 and c2 to one subject and c3 to another (once); subject -> credentials."""
    registrar = consortium.identity("registrar.civilaffairs.sz1")
    subjects = [subject_of(consortium, identity_number(n)) for n in (71, 71, 72)]
    expected: dict[str, set[tuple[str, str]]] = {}
    for name, subject in zip(CITIZENS, subjects, strict=True):
        identity = consortium.identity(name)
        fingerprint = certificate_fingerprint(identity.certificate)
        if service.ledger.state_json("citizen", identity.msp_id, fingerprint) is None:
            argument = {"certificate": identity.cert_pem().decode(), "subject": subject}
            await submit_in_process(service, registrar, "RegisterCitizen", argument)
        expected.setdefault(subject, set()).add((identity.msp_id, fingerprint))
    return expected


async def test_index_and_scan_name_the_same_credentials(
    service: GatewayService, consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = await _bound(service, consortium)
    assert [len(c) for c in expected.values()] == [2, 1]

    def no_scan(subject: str) -> list[tuple[str, str]]:
        raise AssertionError("a marked ledger must be read through the index")

    with monkeypatch.context() as patch:
        patch.setattr(service.queries, "_scan_bindings", no_scan)
        indexed = {s: set(service.queries.subject_credentials(s)) for s in expected}
        assert indexed == expected
        assert service.queries.subject_credentials("ps1:" + "0" * 64) == []

    # A ledger without the mark: every binding is read instead.
    monkeypatch.setattr(queries_module, "CITIZEN_INDEX_KEY", "no_such_mark")
    scanned = {s: set(service.queries.subject_credentials(s)) for s in expected}
    assert scanned == expected


async def test_an_unmarked_ledger_is_scanned_not_read_through_the_index(
    service: GatewayService, consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = next(iter(await _bound(service, consortium)))
    monkeypatch.setattr(queries_module, "CITIZEN_INDEX_KEY", "no_such_mark")
    monkeypatch.setattr(queries_module, "SUBJECT_CITIZEN", "no_such_index")
    assert service.queries.subject_credentials(subject)  # found by the scan alone


async def test_an_index_entry_without_a_matching_binding_names_nobody(
    service: GatewayService, consortium: Consortium
) -> None:
    # State forged behind the contract's back (an index entry naming citizen.c3, who is bound
    # to the other subject): the binding decides, so c3 does not become a reader.
    bound = await _bound(service, consortium)
    [(first, pair)] = [(s, c) for s, c in bound.items() if len(c) == 2]
    c3 = consortium.identity("citizen.c3")
    c3_key = (c3.msp_id, certificate_fingerprint(c3.certificate))
    assert c3_key not in pair
    forged = composite_key("subject_citizen", first, *c3_key)
    with sqlite3.connect(service.network.store.path) as ledger:
        ledger.execute(
            "INSERT INTO state (namespace, key, value, block_num, tx_num) VALUES (?, ?, ?, ?, ?)",
            (service.ledger.chaincode, forged.encode(), b"1", 1, 0),
        )
    assert set(service.queries.subject_credentials(first)) == pair
