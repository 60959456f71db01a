"""I6: the durability settings the crash tests cannot see.

A kill -9 leaves the OS page cache intact, so the SIGKILL tests pass even
when nothing is ever flushed to the disk; only a power cut or a kernel panic
would show it. What keeps a committed block, a stored ciphertext or a logged
key release across those is a setting, and this module pins each one where
the product makes it:

* every SQLite database the gateway opens for writing runs in WAL mode with
  the ``synchronous`` level its module documents -- ``FULL`` for the ledger
  (:mod:`network.engine.statedb`) and the department stores
  (:mod:`gateway.store.engine`), ``NORMAL`` for the nonce cache
  (:mod:`gateway.auth.nonces`, whose docstring argues why that suffices) --
  checked on the very connections the product opened (``PRAGMA
  synchronous`` is per connection), while a real gateway serves a real
  history;
* a key release and an on-demand note release are each fsynced to their
  custodian's log, with every line already written, before the answer leaves
  (``os.fsync`` is wrapped by a recorder that reads the file at that moment).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.service.releases import note_release_log_path, release_log_path
from tests.gateway.note_release_scene import NoteScene, note_release_scene

FULL, NORMAL = 2, 1  # PRAGMA synchronous values (0 is OFF, 3 is EXTRA)
#: Databases under the home opened for writing, and the synchronous level each must use.
SYNCHRONOUS = {"ledger": FULL, "stores": FULL, "gateway/nonces.sqlite": NORMAL}
SETTLEMENT = "officer.health.sz1"


@dataclass
class OpenedDatabases:
    """Every SQLite connection opened in this process while recording (with its arguments)."""

    connections: list[tuple[tuple[Any, ...], dict[str, Any], sqlite3.Connection]] = field(
        default_factory=list
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recorder(self, connect: Callable[..., sqlite3.Connection]) -> Callable[..., Any]:
        def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            connection = connect(*args, **kwargs)
            with self.lock:
                self.connections.append((args, kwargs, connection))
            return connection

        return recording

    def writable(self, home: Path) -> dict[sqlite3.Connection, str]:
        """Open read-write connections to files under ``home``: connection -> relative path."""
        found: dict[sqlite3.Connection, str] = {}
        with self.lock:
            connections = list(self.connections)
        for args, kwargs, connection in connections:
            target = str(args[0] if args else kwargs.get("database", ""))
            if kwargs.get("uri") and "mode=ro" in target:
                continue
            try:
                rows = connection.execute("PRAGMA database_list").fetchall()
            except sqlite3.ProgrammingError:  # closed since
                continue
            main = Path(next(str(r[2]) for r in rows if r[1] == "main")).resolve()
            if main.is_relative_to(home.resolve()):
                found[connection] = main.relative_to(home.resolve()).as_posix()
        return found


@dataclass
class Served:
    scene: NoteScene
    opened: OpenedDatabases


@pytest.fixture(scope="module")
def served(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The note-release scene's live gateway, every SQLite connect it made recorded."""
    opened = OpenedDatabases()
    with pytest.MonkeyPatch.context() as patch:
        # The engine and nonce cache call sqlite3.connect; SQLAlchemy calls sqlite3.dbapi2.connect.
        patch.setattr(sqlite3, "connect", opened.recorder(sqlite3.connect))
        patch.setattr(sqlite3.dbapi2, "connect", opened.recorder(sqlite3.dbapi2.connect))
        with note_release_scene(demo_home, tmp_path_factory.mktemp("i6-durability")) as scene:
            yield Served(scene, opened)


def _expected_level(relative: str) -> int | None:
    for prefix, level in SYNCHRONOUS.items():
        if relative == prefix or relative.startswith(prefix + "/"):
            return level
    return None


def test_every_durable_database_is_wal_with_its_synchronous_level(served: Served) -> None:
    home = served.scene.home
    writable = served.opened.writable(home)
    settings: dict[str, set[tuple[str, int]]] = {}
    for connection, relative in writable.items():
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        (level,) = connection.execute("PRAGMA synchronous").fetchone()
        settings.setdefault(relative, set()).add((str(mode).lower(), int(level)))
    # A database written under the home with no level decided here is a store nobody pinned.
    assert {r for r in settings if _expected_level(r) is None} == set(), settings
    for prefix in SYNCHRONOUS:
        assert any(r == prefix or r.startswith(prefix + "/") for r in settings), (prefix, settings)
    assert any(r.startswith("stores/") for r in settings)  # the scene used the stores
    for relative, seen in settings.items():
        assert seen == {("wal", _expected_level(relative))}, (relative, seen)


@dataclass
class FsyncRecorder:
    """Wraps ``os.fsync``: for each call, the file's path and its bytes at that moment."""

    real: Callable[[int], None]
    calls: list[tuple[Path, bytes]] = field(default_factory=list)

    def __call__(self, fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        content = path.read_bytes() if path.is_file() else b""
        self.real(fd)
        self.calls.append((path.resolve(), content))

    def last_content(self, path: Path) -> bytes | None:
        """What ``path`` held when it was last fsynced (``None``: never)."""
        contents = [c for p, c in self.calls if p == path.resolve()]
        return contents[-1] if contents else None


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> FsyncRecorder:
    recorder = FsyncRecorder(os.fsync)
    monkeypatch.setattr(os, "fsync", recorder)
    return recorder


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _assert_durable_before_return(fsyncs: FsyncRecorder, log: Path, before: int) -> None:
    """The lines appended since ``before`` were all written, then fsynced, before returning."""
    written = log.read_bytes()
    added = written[before:]
    assert added.strip(), f"nothing was appended to {log}"
    assert added.endswith(b"\n")
    synced = fsyncs.last_content(log)
    assert synced is not None, f"{log} was never fsynced before the release returned"
    assert synced == written, f"{log} changed after its last fsync"


def test_a_key_release_is_fsynced_before_the_grant_returns(
    served: Served, fsyncs: FsyncRecorder
) -> None:
    scene = served.scene
    log = release_log_path(scene.home, "Health")
    before = _size(log)
    with scene.sdk(SETTLEMENT) as officer:
        result = officer.request_access(scene.person, ["health_record"], "T1", "medical_settlement")
        assert result.decision == "granted"
        _assert_durable_before_return(fsyncs, log, before)
    assert b'"tx_id":"' + result.tx_id.encode() in log.read_bytes()[before:]


def test_a_note_release_is_fsynced_before_the_notes_return(
    served: Served, fsyncs: FsyncRecorder
) -> None:
    scene = served.scene
    log = note_release_log_path(scene.home, "Audit")
    before = _size(log)
    client = scene.client("citizen.c2")  # bound after every note: each key is sealed on demand
    try:
        response = client.request("GET", f"/v1/me/notes/{scene.event_id}")
        assert response.status_code == 200, response.text
        _assert_durable_before_return(fsyncs, log, before)
    finally:
        client.close()
    assert log.read_bytes()[before:].count(b"\n") == len(response.json()["notes"]) == 3
