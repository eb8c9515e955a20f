"""Credentials for the WordPress and Instagram providers (the provider check gains them).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 11:50:00+00:00

Hand-written to match PROVIDERS in agency/db/models_integrations.py. A check constraint cannot
be altered in place: it is dropped and created again with the new list.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "integration_credentials"
_CONSTRAINT = "provider_valid"  # the naming convention expands it to ck_integration_credentials_provider_valid
_BEFORE = ("hubspot", "ga4", "google-ads", "linkedin", "x", "resend")
_AFTER = (*_BEFORE, "wordpress", "instagram")


def _check(providers: tuple[str, ...]) -> str:
    return "provider IN (" + ", ".join(f"'{p}'" for p in providers) + ")"


def upgrade() -> None:
    op.drop_constraint(op.f(f"ck_{_TABLE}_{_CONSTRAINT}"), _TABLE, type_="check")
    op.create_check_constraint(op.f(f"ck_{_TABLE}_{_CONSTRAINT}"), _TABLE, _check(_AFTER))


def downgrade() -> None:
    # Credentials of the new providers would violate the old check: they go with it.
    op.execute(f"DELETE FROM {_TABLE} WHERE provider IN ('wordpress', 'instagram')")
    op.drop_constraint(op.f(f"ck_{_TABLE}_{_CONSTRAINT}"), _TABLE, type_="check")
    op.create_check_constraint(op.f(f"ck_{_TABLE}_{_CONSTRAINT}"), _TABLE, _check(_BEFORE))
