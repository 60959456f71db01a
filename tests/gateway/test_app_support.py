"""Shared support for the gateway app tests: a live gateway on 127.0.0.1 and a signing client.

Not a test module of its own (it holds no tests); the ``test_app_*`` and
``test_routes_*`` modules import from it. The client signs every request the
way ``docs/authentication.md`` says and drives the two legs of a write
(``docs/api.md``) with the caller's own key: nothing here calls gateway
internals, so the tests exercise exactly what an agency system would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from chaincode.signed import ACCESS_REQUEST_FORMAT, sign_document
from crypto.consortium import Consortium
from crypto.envelope import AssociatedData, decrypt_tier, open_sealed_key
from crypto.identity import Identity
from crypto.pseudonym import check_character, pseudonym
from gateway.app import create_app
from gateway.auth import sign_request
from gateway.service.core import GatewayService
from gateway.service.notes import NOTE_TIER, NOTES_ORG, note_id
from gateway.service.transactions import build_signed_proposal, sign_transaction
from gateway.settings import GatewaySettings
from gateway.store import StoreRegistry
from policies.catalogue import Catalogue

SHENZHEN = "440300"


@dataclass
class ShiftedClock:
    """Real time plus an adjustable offset: gateway and clients read the same clock."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def copy_home(demo_home: Path, target: Path) -> Path:
    """A private, writable copy of the session's demo home."""
    home = target / "home"
    shutil.copytree(demo_home, home)
    return home


def identity_number(sequence: int, *, region: str = "440304", born: str = "19900101") -> str:
    """A valid GB 11643 number (checksum computed)."""
    first17 = f"{region}{born}{sequence % 1000:03d}"
    return first17 + check_character(first17)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def residence_permit(number: str, *, city: str = SHENZHEN) -> dict[str, Any]:
    """A residence permit payload (fields of every tier)."""
    return {
        "issuing_city_code": city,
        "issuing_authority_code": "440304010000",
        "status": "valid",
        "valid_from": "2024-03-01",
        "valid_to": "2027-02-28",
        "permit_number": "4403002024000123",
        "holder_name": "李明",
        "hukou_region_code": "513701",
        "residence_district_code": "440305",
        "residence_since": "2021-06-15",
        "residence_reason": "employment",
        "residence_address": "广东省深圳市南山区科技园路1号2栋301",
        "contact_phone": "13800138000",
        "holder_identity_number": number,
    }


class LiveGateway:
    """The gateway app served by uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, settings: GatewaySettings, clock: ShiftedClock) -> None:
        self.settings = settings
        self.clock = clock
        self.app = create_app(settings, clock=clock)
        # proto=IPPROTO_TCP, or asyncio does not set TCP_NODELAY on accepted connections
        # and every response waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._socket = sock

    def __enter__(self) -> LiveGateway:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self._socket.close()

    def height(self) -> int:
        return int(httpx.get(f"{self.url}/healthz").json()["height"])


class SignedClient:
    """An agency system acting as one identity: signs requests, proposals and transactions."""

    def __init__(self, base_url: str, identity: Identity, clock: ShiftedClock) -> None:
        self.base_url = base_url
        self.identity = identity
        self.clock = clock
        self.http = httpx.Client(timeout=60)
        self._ledger: dict[str, Any] | None = None

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        extra = dict(headers or {})
        if content and not any(k.lower() == "content-type" for k in extra):
            extra["Content-Type"] = "application/json"
        url = self.base_url + path
        signed = sign_request(method, url, extra, content, identity=self.identity, now=self.clock())
        return self.http.request(method, url, content=content, headers=signed)

    def ledger(self) -> dict[str, Any]:
        if self._ledger is None:
            response = self.request("GET", "/v1/ledger")
            assert response.status_code == 200, response.text
            self._ledger = response.json()
        return self._ledger

    def proposal(self, function: str, argument: Mapping[str, Any]) -> str:
        info = self.ledger()
        raw = build_signed_proposal(
            self.identity,
            channel=info["channel"],
            chaincode=info["chaincode"],
            function=function,
            argument=argument,
            now=self.clock(),
        )
        return base64.b64encode(raw).decode("ascii")

    def propose(
        self,
        path: str,
        function: str,
        argument: Mapping[str, Any],
        *,
        method: str = "POST",
        extra: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        return self.request(
            method, path, {"proposal": self.proposal(function, argument), **(extra or {})}
        )

    def commit(
        self, prepared: Mapping[str, Any], *, include_ciphertexts: bool = False
    ) -> httpx.Response:
        signature = sign_transaction(self.identity, base64.b64decode(prepared["transaction"]))
        return self.request(
            "POST",
            f"/v1/transactions/{prepared['tx_id']}/commit",
            {
                "signature": base64.b64encode(signature).decode("ascii"),
                "include_ciphertexts": include_ciphertexts,
            },
        )

    def submit(
        self, path: str, function: str, argument: Mapping[str, Any], **kwargs: Any
    ) -> httpx.Response:
        """Both legs; returns the commit response (or the failed propose response)."""
        proposed = self.propose(path, function, argument, **kwargs)
        if proposed.status_code != 201:
            return proposed
        return self.commit(proposed.json())

    def register_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /v1/records, then propose and commit the returned argument."""
        drafted = self.request("POST", "/v1/records", body)
        assert drafted.status_code == 201, drafted.text
        draft = drafted.json()
        committed = self.submit("/v1/transactions", draft["function"], draft["argument"])
        assert committed.status_code == 200, committed.text
        return {"draft": draft, "commit": committed.json()}

    def access_document(
        self,
        subject: str,
        *,
        tier: str,
        purpose: str,
        record_types: list[str] | None = None,
        record_ids: list[str] | None = None,
        case_ref: str | None = None,
        emergency: bool = False,
        justification: str | None = None,
    ) -> dict[str, Any]:
        """The officer's signed access request (the RequestAccess argument)."""
        document: dict[str, Any] = {
            "format": ACCESS_REQUEST_FORMAT,
            "subject": subject,
            "tier": tier,
            "purpose": purpose,
            "case_ref": case_ref,
            "emergency": emergency,
            "justification_hash": (
                hashlib.sha256(justification.encode()).hexdigest() if justification else None
            ),
            "nonce": secrets.token_hex(16),
            "timestamp": iso(self.clock()),
        }
        if record_types is not None:
            document["record_types"] = record_types
        if record_ids is not None:
            document["record_ids"] = record_ids
        signed: dict[str, Any] = json.loads(sign_document(document, self.identity.signer))
        return signed

    def request_access(self, subject: str, **kwargs: Any) -> httpx.Response:
        """Propose and commit an access request; returns the commit response."""
        return self.submit(
            "/v1/access-requests", "RequestAccess", self.access_document(subject, **kwargs)
        )


@dataclass
class Env:
    """A live gateway on a private home, its consortium and the shared clock."""

    home: Path
    consortium: Consortium
    gateway: LiveGateway
    clock: ShiftedClock

    def client(self, name: str) -> SignedClient:
        return SignedClient(self.gateway.url, self.consortium.identity(name), self.clock)


@contextmanager
def live_env(demo_home: Path, root: Path, **settings: Any) -> Iterator[Env]:
    """Copy the demo home under ``root`` and serve it until the block ends."""
    home = copy_home(demo_home, root)
    clock = ShiftedClock()
    with LiveGateway(GatewaySettings(home=home, **settings), clock) as gateway:
        yield Env(home, Consortium.load(home), gateway, clock)


def catalogue_example(record_type: str) -> dict[str, Any]:
    """The catalogue's own example payload of ``record_type`` v1."""
    example: dict[str, Any] = Catalogue.load_default().schema(record_type, 1)["examples"][0]
    return dict(example)


def subject_of(consortium: Consortium, number: str) -> str:
    return pseudonym(number, consortium.consortium_secret())


def clients(gateway: LiveGateway, consortium: Consortium, *names: str) -> Iterator[SignedClient]:
    for name in names:
        yield SignedClient(gateway.url, consortium.identity(name), gateway.clock)


def read_note(home: Path, kind: str, tx_id: str) -> tuple[bytes, str]:
    """An off-chain note as an auditor retrieves it: ``(ciphertext, text)``.

    Reads the Audit department's store of ``home`` and opens the sealed key
    with the Audit custodian's private key, as the audit office would.
    """
    record_id = note_id(kind, tx_id)
    stores = StoreRegistry(home)
    try:
        store = stores.store(NOTES_ORG)
        [entry] = store.list_tier_keys(record_id=record_id)
        ciphertext = store.get_blob(entry.address)
    finally:
        stores.close()
    key = open_sealed_key(entry.sealed_key, Consortium.load(home).custodian_key(NOTES_ORG))
    text = decrypt_tier(key, ciphertext, AssociatedData(record_id, 1, kind, NOTE_TIER))
    return ciphertext, text.decode("utf-8")


def has_note(home: Path, kind: str, tx_id: str) -> bool:
    """Whether the Audit store holds a note of ``kind`` for transaction ``tx_id``."""
    stores = StoreRegistry(home)
    try:
        return bool(stores.store(NOTES_ORG).list_tier_keys(record_id=note_id(kind, tx_id)))
    finally:
        stores.close()


async def submit_in_process(
    service: GatewayService, identity: Identity, function: str, argument: dict[str, Any]
) -> str:
    """Propose, sign and commit one call through the service's two legs, without HTTP."""
    raw = build_signed_proposal(
        identity,
        channel=service.ledger.channel,
        chaincode=service.ledger.chaincode,
        function=function,
        argument=argument,
        now=service.now(),
    )
    prepared = await service.propose(identity, base64.b64encode(raw).decode(), {function})
    signature = sign_transaction(identity, base64.b64decode(prepared.transaction))
    committed = await service.commit(identity, prepared.tx_id, base64.b64encode(signature).decode())
    return committed.tx_id
