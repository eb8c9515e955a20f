"""Run the repository's Alembic migrations from code (``agency up``, tests, deploy jobs)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from agency.db.session import normalize_database_url
from agency.settings import REPO_ROOT

ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    """Alembic Config for the repo's migrations, pointed at ``database_url``."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    # ConfigParser interpolates '%': escape it, URL-encoded socket paths and passwords contain it.
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    # Leave the caller's logging alone (env.py would otherwise apply alembic.ini's).
    config.attributes["configure_logger"] = False
    return config


def upgrade_head(database_url: str) -> None:
    """Bring the schema at ``database_url`` to the latest revision (no-op when current)."""
    command.upgrade(alembic_config(database_url), "head")


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None for an unmigrated database."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
