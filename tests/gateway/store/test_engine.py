"""Opening department stores: default SQLite files, PostgreSQL schemas, the registry."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from crypto.consortium import Consortium
from crypto.envelope import seal_key, x25519_public_key
from gateway.store import (
    DepartmentStore,
    StoreConfigError,
    StoreRegistry,
    default_schema,
    default_store_path,
)
from gateway.store.models import StoreModel
from tests.gateway.store.conftest import StoreFactory, drop_schema

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def test_registry_puts_each_department_in_its_own_sqlite_file(
    tmp_path: Path, consortium: Consortium
) -> None:
    registry = StoreRegistry(tmp_path, orgs=[org.name for org in consortium.orgs()])
    try:
        education = registry.store("Education")
        health = registry.store("Health")
        assert registry.store("Education") is education
        address = education.put_blob(b"education ciphertext")
        assert health.list_addresses() == []
        assert education.list_addresses() == [address]
        path = tmp_path / "stores" / "Education.sqlite"
        assert default_store_path(tmp_path, "Education") == path
        assert path.is_file()
        assert (tmp_path / "stores" / "Health.sqlite").is_file()
        assert registry.schema_for("Education") is None
        with education.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        registry.close()


def test_sqlite_erasure_leaves_no_payload_bytes_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "Education.sqlite"
    store = DepartmentStore.open("Education", f"sqlite:///{path}")
    try:
        ciphertext = os.urandom(200)
        sealed = seal_key(os.urandom(32), x25519_public_key(os.urandom(32)))
        address = store.put_blob(ciphertext)
        store.put_tier_key(
            record_id="victim", version=1, tier="T2", sealed_key=sealed, address=address, size=200
        )
        before = _file_bytes(path)
        assert ciphertext in before
        assert sealed in before

        store.erase_record(record_id="victim", erased_by="admin.education", now=NOW)

        after = _file_bytes(path)
        assert ciphertext not in after
        assert sealed not in after
        # Only bookkeeping survives: the address and the tombstone.
        assert address.encode() in after
    finally:
        store.close()


def test_registry_honours_configured_urls(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "tax.db"
    registry = StoreRegistry(tmp_path / "home", urls={"Tax": f"sqlite:///{elsewhere}"})
    try:
        registry.store("Tax").put_blob(b"tax ciphertext")
        assert elsewhere.is_file()
        assert not (tmp_path / "home" / "stores" / "Tax.sqlite").exists()
    finally:
        registry.close()


def test_registry_refuses_unknown_organisations(tmp_path: Path) -> None:
    registry = StoreRegistry(tmp_path, orgs=["Education"])
    with pytest.raises(StoreConfigError) as caught:
        registry.store("Edukation")
    assert caught.value.code == "unknown_org"
    with pytest.raises(StoreConfigError, match="Edukation") as configured:
        StoreRegistry(tmp_path, urls={"Edukation": "sqlite:///x.db"}, orgs=["Education"])
    assert configured.value.code == "unknown_org"


@pytest.mark.parametrize("org", ["../Education", "Edu/cation", "", ".hidden", "a" * 65])
def test_organisation_names_cannot_escape_the_stores_folder(tmp_path: Path, org: str) -> None:
    with pytest.raises(StoreConfigError) as caught:
        StoreRegistry(tmp_path).store(org)
    assert caught.value.code == "store_config_invalid"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user@host/db", "unsupported"),
        ("sqlite://", "file path"),
        ("sqlite:///:memory:", "file path"),
        ("postgresql+psycopg2://u@h/db", "psycopg 3"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message) as caught:
        DepartmentStore.open("Education", url)
    assert caught.value.code == "store_config_invalid"


def test_sqlite_stores_have_no_schemas(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="schemas"):
        DepartmentStore.open("Education", f"sqlite:///{tmp_path / 'x.db'}", schema="x")


def test_postgresql_departments_default_to_their_own_schema(tmp_path: Path) -> None:
    registry = StoreRegistry(
        tmp_path,
        urls={"Health": "postgresql://u:p@db.example/stores", "Tax": "postgresql://u@db/stores"},
        schemas={"Tax": "tax_2025"},
    )
    assert registry.schema_for("Health") == default_schema("Health") == "store_health"
    assert registry.schema_for("Tax") == "tax_2025"
    assert registry.schema_for("Education") is None  # SQLite default
    assert registry.url_for("Education").startswith("sqlite:////")


@pytest.mark.postgres
def test_postgresql_departments_sharing_a_database_are_isolated(
    pg_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    schemas = {"Health": f"test_{tag}_health", "Tax": f"test_{tag}_tax"}
    registry = StoreRegistry(
        tmp_path, urls={"Health": pg_url, "Tax": pg_url}, schemas=schemas, orgs=["Health", "Tax"]
    )
    try:
        address = registry.store("Health").put_blob(b"health ciphertext")
        assert registry.store("Tax").list_addresses() == []
        assert registry.store("Health").get_blob(address) == b"health ciphertext"
        with registry.store("Health").engine.connect() as connection:
            found = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schemas["Health"]},
            ).scalar()
        assert found == len(StoreModel.metadata.tables)  # every store table, in its schema only
    finally:
        registry.close()
        for schema in schemas.values():
            drop_schema(pg_url, schema)


def test_two_stores_on_one_backend_do_not_share_rows(open_store: StoreFactory) -> None:
    education, health = open_store("Education"), open_store("Health")
    address = education.put_blob(b"only in education")
    assert health.list_addresses() == []
    assert education.list_addresses() == [address]
