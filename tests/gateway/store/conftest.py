"""Store fixtures: every store test runs against SQLite and against PostgreSQL.

The PostgreSQL variants need ``ACCESSLEDGER_TEST_PG_URL`` (for example
``postgresql+psycopg://accessledger:accessledger@127.0.0.1:5432/accessledger_test``);
without it they are skipped with a reason that says so. Each PostgreSQL test
gets a schema of its own, dropped afterwards, so tests never see each other's
rows and leave nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.store import DepartmentStore

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

#: Opens a store for an organisation; the fixture closes and cleans it up.
StoreFactory = Callable[[str], DepartmentStore]


def drop_schema(url: str, schema: str) -> None:
    """Drop a test schema and everything in it."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"`` (the latter skipped without a server)."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_url")
    return str(request.param)


@pytest.fixture
def open_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """Open fresh, isolated stores on the current backend (one per organisation name)."""
    opened: list[tuple[DepartmentStore, str | None]] = []
    pg_url = request.getfixturevalue("pg_url") if backend == "postgresql" else ""

    def factory(org: str) -> DepartmentStore:
        if backend == "sqlite":
            store = DepartmentStore.open(org, f"sqlite:///{tmp_path / f'{org}.sqlite'}")
            opened.append((store, None))
        else:
            schema = f"test_{uuid.uuid4().hex[:20]}"
            opened.append((DepartmentStore.open(org, pg_url, schema=schema), schema))
            store = opened[-1][0]
        return store

    yield factory
    for store, schema in opened:
        store.close()
        if schema is not None:
            drop_schema(pg_url, schema)


@pytest.fixture
def store(open_store: StoreFactory) -> DepartmentStore:
    """A fresh, empty Education store on the current backend."""
    return open_store("Education")
