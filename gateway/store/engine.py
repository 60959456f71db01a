"""Department stores: one database per department, SQLite by default, PostgreSQL on request.

Each department (organisation) keeps its ciphertexts and sealed keys in its
own store, so compromising one department's database exposes nothing of
another's. By default the store is ``HOME/stores/<Org>.sqlite``; any
department can instead be given a database URL (``postgresql+psycopg://``;
a bare ``postgresql://`` is read as psycopg 3). On PostgreSQL each department
lives in its own schema (default ``store_<org>``), so several departments may
share one server or even one database without sharing tables.

SQLite settings, chosen for an off-chain store the ledger points into:

``journal_mode=WAL``
    readers (blob fetches) never wait for a writer.
``synchronous=FULL``
    a ciphertext whose hash the ledger has committed must survive a power
    cut, not just a kill -9.
``secure_delete=ON``
    erased rows are overwritten with zeros, not merely unlinked: crypto-
    shredding must not leave the sealed keys in free pages of the file.
``busy_timeout``
    concurrent writers wait instead of failing at once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from gateway.store import crud, erasure, keycopies, locks, registration
from gateway.store.crud import TierKeyEntry
from gateway.store.erasure import Erasure
from gateway.store.errors import StoreConfigError
from gateway.store.keycopies import RecipientKeyEntry, Resealed, ScanPosition
from gateway.store.models import KEY_ID_LENGTH, store_registry

#: Where default SQLite stores live, relative to the home.
STORES_DIR = "stores"
_ORG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _check_org(org: str) -> str:
    # Organisation names become file and schema names: no separators, no dots.
    if not isinstance(org, str) or not _ORG_NAME.fullmatch(org):
        raise StoreConfigError(
            f"organisation name {org!r} must be a letter followed by letters, digits, '_' or '-'"
        )
    return org


def default_store_path(home: Path, org: str) -> Path:
    """``HOME/stores/<Org>.sqlite``."""
    return Path(home) / STORES_DIR / f"{_check_org(org)}.sqlite"


def default_schema(org: str) -> str:
    """The PostgreSQL schema a department's tables live in unless configured otherwise."""
    return "store_" + _check_org(org).lower().replace("-", "_")


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {locks.LOCK_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA secure_delete = ON")
    finally:
        cursor.close()


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise StoreConfigError(f"not a database URL: {exc}") from None


def create_store_engine(url: str | URL, *, schema: str | None = None) -> Engine:
    """An engine for one department store at ``url``; tables are created on demand.

    ``schema`` (PostgreSQL only) places the store's tables in that schema,
    which is created if missing.
    """
    parsed = _parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise StoreConfigError("SQLite stores have no schemas; use one file per department")
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreConfigError(
                "a SQLite store needs a file path (sqlite:///PATH); memory databases vanish"
            )
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    elif backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            if parsed.drivername != "postgresql":
                raise StoreConfigError(
                    "PostgreSQL stores use psycopg 3 (postgresql+psycopg://), "
                    f"not {parsed.drivername}"
                )
            parsed = parsed.set(drivername="postgresql+psycopg")
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise StoreConfigError(f"schema name {schema!r} must be lowercase letters, digits, '_'")
        engine = create_engine(parsed, pool_pre_ping=True)
        if schema is not None:
            with engine.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            engine = engine.execution_options(schema_translate_map={None: schema})
    else:
        raise StoreConfigError(
            f"unsupported store database {parsed.drivername!r}; use sqlite:/// or postgresql+psycopg://"
        )
    store_registry.metadata.create_all(engine)
    _migrate(engine, schema)
    return engine


def _migrate(engine: Engine, schema: str | None) -> None:
    """Bring a store created by an earlier release up to the current tables.

    ``create_all`` creates missing tables but never alters existing ones, so
    a new table (``recipient_key``, the recipient copies of note keys) needs
    nothing here: an older store gets it, empty, from ``create_all``. The one
    altered table so far: ``tier_key.key_id`` (which custodian key a row is
    sealed to), added as a nullable column -- ``NULL`` means "written before
    key ids were recorded", which the custodian resolves by trying its keys
    (:mod:`gateway.custodian_keys`) -- plus its index. Safe to run
    concurrently: a column another process added first is not an error.
    """
    columns = {c["name"] for c in inspect(engine).get_columns("tier_key", schema=schema)}
    if "key_id" in columns:
        return
    table = f'"{schema}".tier_key' if schema is not None else "tier_key"
    postgres = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as connection:
            exists = "IF NOT EXISTS " if postgres else ""
            connection.execute(
                text(f"ALTER TABLE {table} ADD COLUMN {exists}key_id VARCHAR({KEY_ID_LENGTH})")
            )
    except DBAPIError:
        # Another process migrated the same store between our check and the ALTER.
        columns = {c["name"] for c in inspect(engine).get_columns("tier_key", schema=schema)}
        if "key_id" not in columns:
            raise
    with engine.begin() as connection:
        connection.execute(
            text(f"CREATE INDEX IF NOT EXISTS ix_tier_key_key_id ON {table} (key_id)")
        )


class DepartmentStore:
    """One department's off-chain store: an engine plus the storage functions bound to it.

    Each method opens a short session and delegates to :mod:`gateway.store.crud`;
    code that composes several steps uses :meth:`session` and the functions
    directly.
    """

    def __init__(self, org: str, engine: Engine) -> None:
        #: The organisation (department) whose data this is.
        self.org = _check_org(org)
        #: The SQLAlchemy engine (schema translation already applied on PostgreSQL).
        self.engine = engine

    @classmethod
    def open(cls, org: str, url: str | URL, *, schema: str | None = None) -> DepartmentStore:
        """Open (creating tables as needed) the store of ``org`` at ``url``."""
        return cls(org, create_store_engine(url, schema=schema))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on this store; closed (and rolled back if uncommitted) on exit."""
        with Session(self.engine) as session:
            yield session

    def put_blob(self, data: bytes, *, address: str | None = None) -> str:
        """See :func:`gateway.store.crud.put_blob`."""
        with self.session() as session:
            return crud.put_blob(session=session, data=data, address=address)

    def get_blob(self, address: str) -> bytes:
        """See :func:`gateway.store.crud.get_blob` (a bare connection: the key-release path)."""
        with self.engine.connect() as connection:
            return crud.get_blob(session=connection, address=address)

    def verify_blob(self, address: str) -> None:
        """See :func:`gateway.store.crud.verify_blob`."""
        with self.session() as session:
            crud.verify_blob(session=session, address=address)

    def verify_blobs(self) -> int:
        """See :func:`gateway.store.crud.verify_blobs`."""
        with self.session() as session:
            return crud.verify_blobs(session=session)

    def list_addresses(self, *, record_id: str | None = None) -> list[str]:
        """See :func:`gateway.store.crud.list_addresses`."""
        with self.session() as session:
            return crud.list_addresses(session=session, record_id=record_id)

    def put_tier_key(
        self,
        *,
        record_id: str,
        version: int,
        tier: str,
        sealed_key: bytes,
        address: str,
        size: int,
        key_id: str | None = None,
    ) -> TierKeyEntry:
        """See :func:`gateway.store.crud.put_tier_key`."""
        with self.session() as session:
            return crud.put_tier_key(
                session=session,
                record_id=record_id,
                version=version,
                tier=tier,
                sealed_key=sealed_key,
                address=address,
                size=size,
                key_id=key_id,
            )

    def put_record_tiers(self, tiers: Sequence[tuple[bytes, TierKeyEntry]]) -> list[TierKeyEntry]:
        """See :func:`gateway.store.registration.put_record_tiers` (one transaction)."""
        with self.session() as session:
            return registration.put_record_tiers(session=session, tiers=tiers)

    def tier_keys_not_sealed_to(
        self, key_id: str, *, after: ScanPosition | None = None, limit: int = 100
    ) -> list[TierKeyEntry]:
        """See :func:`gateway.store.keycopies.tier_keys_not_sealed_to`."""
        with self.session() as session:
            return keycopies.tier_keys_not_sealed_to(
                session=session, key_id=key_id, after=after, limit=limit
            )

    def count_tier_keys_not_sealed_to(self, key_id: str) -> int:
        """See :func:`gateway.store.keycopies.count_tier_keys_not_sealed_to`."""
        with self.session() as session:
            return keycopies.count_tier_keys_not_sealed_to(session=session, key_id=key_id)

    def replace_sealed_keys(self, replacements: Sequence[Resealed]) -> int:
        """See :func:`gateway.store.keycopies.replace_sealed_keys` (one transaction)."""
        with self.session() as session:
            return keycopies.replace_sealed_keys(session=session, replacements=replacements)

    def put_recipient_key(self, entry: RecipientKeyEntry) -> RecipientKeyEntry:
        """See :func:`gateway.store.keycopies.put_recipient_key`."""
        with self.session() as session:
            return keycopies.put_recipient_key(session=session, entry=entry)

    def list_recipient_keys(
        self, *, record_id: str, msp_id: str | None = None
    ) -> list[RecipientKeyEntry]:
        """See :func:`gateway.store.keycopies.list_recipient_keys`."""
        with self.session() as session:
            return keycopies.list_recipient_keys(
                session=session, record_id=record_id, msp_id=msp_id
            )

    def get_tier_key(self, *, record_id: str, version: int, tier: str) -> TierKeyEntry:
        """See :func:`gateway.store.crud.get_tier_key` (a bare connection: the key-release path)."""
        with self.engine.connect() as connection:
            return crud.get_tier_key(
                session=connection, record_id=record_id, version=version, tier=tier
            )

    def list_tier_keys(self, *, record_id: str, version: int | None = None) -> list[TierKeyEntry]:
        """See :func:`gateway.store.crud.list_tier_keys`."""
        with self.session() as session:
            return crud.list_tier_keys(session=session, record_id=record_id, version=version)

    def erase_record(
        self,
        *,
        record_id: str,
        erased_by: str,
        now: datetime,
        lock_timeout_ms: int | None = None,
    ) -> Erasure:
        """See :func:`gateway.store.erasure.erase_record`."""
        with self.session() as session:
            return erasure.erase_record(
                session=session,
                record_id=record_id,
                erased_by=erased_by,
                now=now,
                lock_timeout_ms=lock_timeout_ms,
            )

    def get_erasure(self, *, record_id: str) -> Erasure | None:
        """See :func:`gateway.store.erasure.get_erasure`."""
        with self.session() as session:
            return erasure.get_erasure(session=session, record_id=record_id)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


class StoreRegistry:
    """Maps each department to its store, opening stores lazily and once.

    ``urls`` (organisation -> database URL) comes from the gateway settings;
    a department without an entry gets ``HOME/stores/<Org>.sqlite``.
    ``schemas`` overrides the PostgreSQL schema per department (default
    ``store_<org>``). ``orgs``, when given, is the set of departments that
    exist: asking for any other raises ``unknown_org``, and so does a URL
    configured for an organisation that does not exist (a typo in settings
    must not silently send a department to the default store).
    """

    def __init__(
        self,
        home: Path,
        *,
        urls: Mapping[str, str] | None = None,
        schemas: Mapping[str, str] | None = None,
        orgs: Iterable[str] | None = None,
    ) -> None:
        self.home = Path(home)
        self._urls = {_check_org(org): url for org, url in (urls or {}).items()}
        self._schemas = {_check_org(org): schema for org, schema in (schemas or {}).items()}
        self._orgs = frozenset(_check_org(org) for org in orgs) if orgs is not None else None
        if self._orgs is not None:
            unknown = sorted((set(self._urls) | set(self._schemas)) - self._orgs)
            if unknown:
                raise StoreConfigError(
                    f"stores are configured for {', '.join(unknown)}, "
                    "which are not organisations of this home",
                    code="unknown_org",
                )
        self._stores: dict[str, DepartmentStore] = {}
        self._lock = threading.Lock()

    def url_for(self, org: str) -> str:
        """The database URL of ``org``'s store (its default SQLite file unless configured)."""
        self._check_known(org)
        configured = self._urls.get(org)
        if configured is not None:
            return configured
        path = default_store_path(self.home, org).resolve()
        return URL.create("sqlite", database=str(path)).render_as_string()

    def schema_for(self, org: str) -> str | None:
        """The PostgreSQL schema of ``org``'s store (``None`` for SQLite)."""
        url = self.url_for(org)
        if _parse_url(url).get_backend_name() == "sqlite":
            return None
        return self._schemas.get(org) or default_schema(org)

    def knows(self, org: str) -> bool:
        """Whether ``org`` is a department this registry serves."""
        return self._orgs is None or org in self._orgs

    def add_org(self, org: str) -> None:
        """Serve ``org`` too (a department that joined the channel); its default store."""
        _check_org(org)
        with self._lock:
            if self._orgs is not None:
                self._orgs = self._orgs | {org}

    def store(self, org: str) -> DepartmentStore:
        """The store of ``org``, opened on first use."""
        self._check_known(org)
        with self._lock:
            store = self._stores.get(org)
            if store is None:
                store = DepartmentStore.open(org, self.url_for(org), schema=self.schema_for(org))
                self._stores[org] = store
            return store

    def close(self) -> None:
        """Close every opened store."""
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()

    def _check_known(self, org: str) -> None:
        _check_org(org)
        if self._orgs is not None and org not in self._orgs:
            raise StoreConfigError(
                f"no organisation named {org!r} in this home", code="unknown_org"
            )
