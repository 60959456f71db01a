"""Where the blocks to audit come from: an export file, a home's engine store, a gateway.

Each source yields the raw bytes of the blocks in order, from block 0, and
nothing else: the verifier trusts none of them. A damaged stream (a length
prefix cut short, a truncated download) raises :class:`StreamDamagedError`,
which the replay turns into a finding at the block where it happened; a
source that cannot be opened at all raises :class:`AuditSourceError`.

* :class:`ExportSource` reads a length-delimited block file (``ledger export``,
  Fabric's ``protodelim`` framing, like the fixture ``ledger.bin``).
* :class:`HomeSource` reads the embedded engine's SQLite store of a home
  through :mod:`network.engine.statedb`, without verifying or writing it,
  inside one read snapshot, so the state it compares against is exactly the
  state at the last block it yields.
* :class:`GatewaySource` streams ``GET {url}/v1/audit/blocks?from=N`` (the
  same framing over HTTP) with ``httpx``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from audit.errors import AuditSourceError
from audit.verifier import DEFAULT_CHAINCODE
from network.engine.network import ledger_path
from network.engine.statedb import LedgerError, StateDB, StateSnapshot
from network.fabric import blocks
from network.fabric.errors import BlockFormatError
from network.topology import Topology

#: Path of the gateway's block stream, relative to its base URL.
BLOCKS_PATH = "/v1/audit/blocks"
#: Response header in which the gateway announces the ledger height it streams up to.
HEIGHT_HEADER = "X-AccessLedger-Height"
#: Largest single block accepted from a stream (Fabric's AbsoluteMaxBytes is 10 MiB by default).
MAX_BLOCK_BYTES = 256 * 1024 * 1024


class StreamDamagedError(AuditSourceError):
    """The block stream is cut off or its framing is broken."""

    code = "block_stream_damaged"


class BlockSource:
    """Base of the sources: a description and an iterator of raw blocks."""

    description = "ledger"
    #: AccessLedger's chaincode name, when the source knows it (a home's network.yaml).
    chaincode: str | None = None

    def blocks(self) -> Iterator[bytes]:  # pragma: no cover - abstract
        raise NotImplementedError


class ExportSource(BlockSource):
    """A block file written by ``ledger export`` (or any ``protodelim`` block stream)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.description = f"export {self.path}"

    def blocks(self) -> Iterator[bytes]:
        try:
            stream = self.path.open("rb")
        except OSError as exc:
            raise AuditSourceError(f"cannot read {self.path}: {exc.strerror}") from None
        with stream:
            try:
                yield from blocks.iter_delimited(stream)
            except BlockFormatError as exc:
                raise StreamDamagedError(exc.message) from None


@dataclass(frozen=True)
class HomeLedger:
    """What a home says about its ledger: channel, chaincode and store path."""

    home: Path
    channel: str
    chaincode: str
    store_path: Path

    @classmethod
    def load(cls, home: Path) -> HomeLedger:
        path = Path(home) / "network.yaml"
        if not path.is_file():
            raise AuditSourceError(f"{home} is not an AccessLedger home (no network.yaml)")
        topology = Topology.load(path)
        store = ledger_path(Path(home), topology.channel)
        return cls(Path(home), topology.channel, topology.chaincode.name, store)


class HomeSource(BlockSource):
    """The blocks of a home's embedded-engine store, read inside one snapshot.

    Use as a context manager; :attr:`snapshot` is the engine's state at the
    height the blocks end at, for the state comparison.
    """

    def __init__(self, home: Path) -> None:
        self.ledger = HomeLedger.load(home)
        self.chaincode = self.ledger.chaincode
        self.description = f"home {self.ledger.home} (channel {self.ledger.channel})"
        self._store: StateDB | None = None
        self.snapshot: StateSnapshot | None = None

    def __enter__(self) -> HomeSource:
        if not self.ledger.store_path.is_file():
            raise AuditSourceError(
                f"{self.ledger.home} has no ledger yet ({self.ledger.store_path})"
            )
        try:
            # No verification on open: replay verifies every block and names the bad one.
            self._store = StateDB(self.ledger.store_path, verify="tail", tail_blocks=0)
            self.snapshot = self._store.snapshot()
        except LedgerError as exc:
            self.close()
            raise AuditSourceError(
                f"cannot open the ledger store {self.ledger.store_path}: {exc.message}"
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def store(self) -> StateDB:
        if self._store is None:
            raise AuditSourceError("the home source is not open")
        return self._store

    @property
    def height(self) -> int:
        """The height of the snapshot (blocks ``0 .. height-1`` are yielded)."""
        if self.snapshot is None:
            raise AuditSourceError("the home source is not open")
        return int(self.snapshot.height)

    def blocks(self) -> Iterator[bytes]:
        for expected, (number, data) in enumerate(self.store.iter_blocks(0, self.height)):
            if number != expected:
                raise StreamDamagedError(f"the store has no block {expected} (next is {number})")
            yield data

    def stored_hash(self, number: int) -> bytes | None:
        """The header hash the store recorded for block ``number``."""
        return self.store.get_block_hash(number)


class _Frames:
    """Incremental decoder of a varint-length-delimited stream arriving in chunks."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self.buffer += chunk
        while True:
            length, offset = self._length()
            if length is None or len(self.buffer) < offset + length:
                return
            message = bytes(self.buffer[offset : offset + length])
            del self.buffer[: offset + length]
            yield message

    def _length(self) -> tuple[int | None, int]:
        result = shift = 0
        for position, byte in enumerate(self.buffer[:10]):
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result > MAX_BLOCK_BYTES:
                    raise StreamDamagedError(f"block stream announces a {result}-byte block")
                return result, position + 1
            shift += 7
        if len(self.buffer) >= 10:
            raise StreamDamagedError("block stream length prefix is longer than 10 bytes")
        return None, 0

    def finish(self) -> None:
        if self.buffer:
            raise StreamDamagedError(
                f"block stream ends inside a block ({len(self.buffer)} bytes left over)"
            )


def _problem(response: httpx.Response) -> str:
    """A one-line summary of an error response (RFC 9457 problem details if present)."""
    with contextlib.suppress(ValueError, httpx.ResponseNotRead):
        problem: Any = response.json()
        if isinstance(problem, dict):
            code = problem.get("code") or problem.get("title") or ""
            detail = problem.get("detail") or ""
            return f"{response.status_code} {code}: {detail}".strip(": ")
    return f"{response.status_code} {response.reason_phrase}"


class GatewaySource(BlockSource):
    """Blocks streamed by a gateway's audit endpoint (length-delimited ``common.Block``)."""

    def __init__(
        self,
        url: str,
        *,
        start: int = 0,
        client: httpx.Client | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 60.0,
    ) -> None:
        """``auth`` signs each request if the gateway requires it (an ``httpx.Auth`` flow)."""
        self.url = url.rstrip("/")
        self.start = start
        self.description = f"gateway {self.url}"
        self._client = client
        self._headers = dict(headers or {})
        self._auth = auth
        self._timeout = timeout

    def blocks(self) -> Iterator[bytes]:
        owned = self._client is None
        client = self._client or httpx.Client(timeout=self._timeout)
        received = 0
        try:
            with client.stream(
                "GET",
                self.url + BLOCKS_PATH,
                params={"from": self.start},
                headers=self._headers,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
            ) as response:
                if response.status_code != httpx.codes.OK:
                    response.read()
                    raise AuditSourceError(f"{self.url}{BLOCKS_PATH} answered {_problem(response)}")
                announced = response.headers.get(HEIGHT_HEADER, "")
                frames = _Frames()
                for chunk in response.iter_bytes():
                    for block in frames.feed(chunk):
                        received += 1
                        yield block
                frames.finish()
                if announced.isdigit() and received != int(announced) - self.start:
                    raise StreamDamagedError(
                        f"the gateway announced height {announced} but sent "
                        f"{received} blocks from block {self.start}"
                    )
        except httpx.HTTPError as exc:
            if not received:  # nothing to audit: the source itself is unavailable
                raise AuditSourceError(f"cannot stream blocks from {self.url}: {exc}") from None
            raise StreamDamagedError(f"reading blocks from {self.url} failed: {exc}") from None
        finally:
            if owned:
                client.close()


def chaincode_name(source: BlockSource, override: str | None) -> str:
    """AccessLedger's namespace: the option, else the home's network.yaml, else the default."""
    return override or source.chaincode or DEFAULT_CHAINCODE
