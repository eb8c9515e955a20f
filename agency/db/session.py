"""Async engine and session factory on psycopg 3, and where the database URL comes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from agency.settings import Settings

PSYCOPG_SCHEME = "postgresql+psycopg"
_PLAIN_SCHEMES = ("postgres://", "postgresql://")


def normalize_database_url(url: str) -> str:
    """Point plain ``postgres://``/``postgresql://`` URLs (as tools and hosts write them) at psycopg 3."""
    for scheme in _PLAIN_SCHEMES:
        if url.startswith(scheme):
            return f"{PSYCOPG_SCHEME}://{url[len(scheme):]}"
    if url.startswith("postgresql+"):
        # Another driver (psycopg2, asyncpg): we only ship psycopg 3.
        return f"{PSYCOPG_SCHEME}://{url.split('://', 1)[1]}"
    raise ValueError("DATABASE_URL must be a postgres:// or postgresql:// URL")


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL if set, else the running embedded server's URL, else RuntimeError."""
    if settings.database_url:
        return normalize_database_url(settings.database_url)
    from agency.services.postgres import embedded_database_url

    url = embedded_database_url(settings.pgdata_dir)
    if url is None:
        raise RuntimeError("no database: set DATABASE_URL or run `agency up`")
    return url


def create_engine(database_url: str, *, pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    """Async engine (psycopg 3); pre-ping so connections survive a database restart."""
    return create_async_engine(
        normalize_database_url(database_url),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: async code cannot lazy-load attributes after commit.
    return async_sessionmaker(engine, expire_on_commit=False)
