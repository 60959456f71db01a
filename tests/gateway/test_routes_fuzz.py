"""Generated input never gets a 5xx, and every refusal is problem+json (I7).

Hypothesis sends signed requests with arbitrary JSON bodies, arbitrary
strings where the API wants base64 proposals, corrupted real proposals, and
arbitrary path and query values to every route of a live gateway. Whatever
comes back is below 500, and if it is an error it is
``application/problem+json`` with a ``code``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.errors import AccessLedgerError
from tests.gateway.test_app_support import Env, SignedClient, live_env

CALLERS = (
    "officer.education.sz1",
    "registrar.publicsecurity.sz1",
    "citizen.c1",
    "auditor.audit.sz1",
)
WRITES = (
    ("POST", "/v1/records"),
    ("POST", "/v1/records/rec-1/versions"),
    ("POST", "/v1/transactions"),
    ("POST", f"/v1/transactions/{'a' * 64}/commit"),
    ("POST", "/v1/access-requests"),
    ("POST", "/v1/me/consents"),
    ("DELETE", "/v1/me/consents/consent-1"),
    ("POST", "/v1/me/contests"),
    ("POST", "/v1/audit/reviews"),
)
READS = (
    "/v1/ledger",
    "/v1/me/accesses",
    "/v1/me/consents",
    "/v1/audit/events",
    "/v1/audit/blocks",
    "/v1/transactions/{}",
    "/v1/access-requests/{}",
    "/v1/blobs/{}",
)
FUNCTIONS = (
    "RequestAccess",
    "RegisterRecord",
    "AmendRecord",
    "GrantConsent",
    "RevokeConsent",
    "ContestAccess",
    "ReviewAccess",
    "RegisterEncryptionKey",
    "InstallPolicy",
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
member_names = st.sampled_from(
    [
        "proposal",
        "signature",
        "reason",
        "note",
        "record_type",
        "fields",
        "subject",
        "subject_identity_number",
        "include_ciphertexts",
        "metadata",
        "record_id",
        "schema_version",
    ]
) | st.text(max_size=12)
bodies = st.dictionaries(member_names, json_values, max_size=5) | json_values


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def env(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with live_env(demo_home, tmp_path_factory.mktemp("fuzz")) as started:
        yield started


@pytest.fixture(scope="module")
def callers(env: Env) -> Iterator[dict[str, SignedClient]]:
    clients = {name: env.client(name) for name in CALLERS}
    yield clients
    for client in clients.values():
        client.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        body: dict[str, Any] = response.json()
        assert isinstance(body["code"], str)
        assert body["status"] == response.status_code


fuzz = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fuzz
@given(route=st.sampled_from(WRITES), caller=st.sampled_from(CALLERS), body=bodies)
def test_arbitrary_bodies(
    callers: dict[str, SignedClient], route: tuple[str, str], caller: str, body: Any
) -> None:
    method, path = route
    check(callers[caller].request(method, path, body))


@fuzz
@given(
    route=st.sampled_from(WRITES),
    caller=st.sampled_from(CALLERS),
    proposal=st.text(max_size=200)
    | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
    extra=st.dictionaries(st.sampled_from(["reason", "note", "signature"]), st.text(max_size=30)),
)
def test_arbitrary_proposals(
    callers: dict[str, SignedClient],
    route: tuple[str, str],
    caller: str,
    proposal: str,
    extra: dict[str, str],
) -> None:
    method, path = route
    check(callers[caller].request(method, path, {"proposal": proposal, **extra}))


@fuzz
@given(
    route=st.sampled_from(WRITES),
    caller=st.sampled_from(CALLERS),
    function=st.sampled_from(FUNCTIONS),
    argument=st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    flips=st.lists(st.integers(min_value=0, max_value=10_000), max_size=3),
)
def test_corrupted_real_proposals(
    callers: dict[str, SignedClient],
    route: tuple[str, str],
    caller: str,
    function: str,
    argument: dict[str, Any],
    flips: list[int],
) -> None:
    client = callers[caller]
    try:
        encoded = client.proposal(function, argument)
    except (AccessLedgerError, ValueError, TypeError):
        return  # not canonical-JSON encodable (a float, an unsafe integer): no proposal
    raw = bytearray(base64.b64decode(encoded))
    for position in flips:
        raw[position % len(raw)] ^= 0x5A
    method, path = route
    check(client.request(method, path, {"proposal": base64.b64encode(bytes(raw)).decode()}))


@fuzz
@given(
    template=st.sampled_from(READS),
    caller=st.sampled_from(CALLERS),
    segment=st.text(min_size=1, max_size=70),
    query=st.dictionaries(
        st.sampled_from(
            [
                "from",
                "to",
                "limit",
                "cursor",
                "department",
                "subject",
                "open_review",
                "officer_msp",
                "officer_fingerprint",
                "include_ciphertexts",
                "x",
            ]
        ),
        st.text(max_size=30),
        max_size=4,
    ),
)
def test_arbitrary_paths_and_queries(
    callers: dict[str, SignedClient],
    template: str,
    caller: str,
    segment: str,
    query: dict[str, str],
) -> None:
    path = template.format(quote(segment, safe=""))
    if query:
        path += "?" + urlencode(query)
    check(callers[caller].request("GET", path))


def test_fuzzing_left_the_ledger_consistent(env: Env, callers: dict[str, SignedClient]) -> None:
    response = callers["auditor.audit.sz1"].request("GET", "/v1/audit/blocks?from=0")
    assert response.status_code == 200
    assert int(response.headers["x-accessledger-height"]) == env.gateway.height()
    assert json.loads(httpx.get(f"{env.gateway.url}/healthz").text)["status"] == "ok"
