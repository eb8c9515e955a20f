"""PostgreSQL persistence: typed models, async sessions, Alembic migrations, repository.

Importing the package registers every table on ``Base.metadata`` (Alembic and the migration
test compare against all of them).
"""

from agency.db import (  # noqa: F401
    models,
    models_ad_sync,
    models_competitive,
    models_contacts,
    models_identity,
    models_imports,
    models_integrations,
    models_ratelimit,
    models_sync,
)
