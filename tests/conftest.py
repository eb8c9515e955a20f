"""Shared fixtures.

Database: a real PostgreSQL for the whole test session, either ``DATABASE_URL`` (CI matrix,
managed servers) or an embedded server in a temporary directory that is always stopped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agency.db.migrate import upgrade_head
from agency.db.session import create_engine, normalize_database_url
from agency.services.postgres import start_embedded_postgres, stop_embedded_postgres


# ---- database -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """URL of a PostgreSQL database for this test session."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return normalize_database_url(external)
    pgdata = tmp_path_factory.mktemp("postgres") / "pgdata"
    # Registered before starting, so a half-started server is stopped too.
    request.addfinalizer(lambda: stop_embedded_postgres(pgdata))
    return start_embedded_postgres(pgdata, database="agency_test")


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    upgrade_head(database_url)
    return database_url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=2, max_overflow=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db_session(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back after the test.

    ``session.begin()``/``commit()`` in the code under test work on savepoints, so nothing
    a test writes is ever visible to another test.
    """
    async with db_engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()

