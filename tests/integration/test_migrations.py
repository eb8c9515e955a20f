"""Alembic migrations against a real PostgreSQL, and the embedded server's lifecycle."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from agency.db.migrate import alembic_config, current_revision, downgrade, upgrade_head
from agency.db.models import Base
from agency.services.postgres import embedded_database_url, start_embedded_postgres, stop_embedded_postgres

pytestmark = pytest.mark.integration

APP_TABLES = {
    "tenants",
    "users",
    "campaigns",
    "campaign_steps",
    "content_items",
    "content_versions",
    "content_reviews",
    "channel_metrics",
    "market_weeks",
    "market_fits",
    "allocation_changes",
    "experiments",
    "brand_profiles",
    "content_recommendations",
    "reports",
    "audit_events",
    "audit_chain_head",
    "rate_limit_buckets",
    "service_identities",
    "signing_keys",
    "refresh_tokens",
    "api_keys",
    "competitor_watches",
    "competitor_sources",
    "competitor_items",
    "competitor_topics",
    "companies",
    "contacts",
    "contact_imports",
    "contact_import_rows",
    "contact_import_chunks",
    "import_quarantine",
    "integration_credentials",
    "crm_sync_states",
    "sync_conflicts",
    "crm_sync_deletions",
    "ad_platform_item_states",
}


def _libpq_conninfo(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    """A brand-new database on the session's server, dropped afterwards.

    The name contains '%' so the URL carries '%25': Alembic's ini interpolation must not choke.
    """
    name = f"migrations_{uuid.uuid4().hex[:8]}%test"
    admin = _libpq_conninfo(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_empty_database(empty_database_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(empty_database_url)).get_current_head()
    assert current_revision(empty_database_url) is None

    upgrade_head(empty_database_url)
    assert current_revision(empty_database_url) == head
    assert _tables(empty_database_url) == APP_TABLES

    downgrade(empty_database_url, "base")
    assert current_revision(empty_database_url) is None
    assert _tables(empty_database_url) == set()

    upgrade_head(empty_database_url)
    upgrade_head(empty_database_url)  # already at head: a no-op, not an error
    assert current_revision(empty_database_url) == head
    assert _tables(empty_database_url) == APP_TABLES


def test_models_match_the_migrations(migrated_database_url: str) -> None:
    """Every model change must come with a migration (the same check as `alembic check`)."""
    engine = create_engine(migrated_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_embedded_server_restarts_with_its_data(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    assert embedded_database_url(pgdata) is None
    try:
        url = start_embedded_postgres(pgdata, database="lifecycle")
        assert start_embedded_postgres(pgdata, database="lifecycle") == url  # idempotent
        assert embedded_database_url(pgdata, database="lifecycle") == url
        upgrade_head(url)
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO tenants (slug, name) VALUES ('kept', 'Kept')"))
        finally:
            engine.dispose()

        stop_embedded_postgres(pgdata)
        assert embedded_database_url(pgdata) is None
        stop_embedded_postgres(pgdata)  # stopping a stopped server is a no-op

        url = start_embedded_postgres(pgdata, database="lifecycle")
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT name FROM tenants WHERE slug = 'kept'")).scalar_one() == "Kept"
        finally:
            engine.dispose()
    finally:
        stop_embedded_postgres(pgdata)
    assert embedded_database_url(pgdata) is None
