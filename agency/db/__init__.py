"""PostgreSQL persistence: typed models, async sessions, Alembic migrations, repository."""
