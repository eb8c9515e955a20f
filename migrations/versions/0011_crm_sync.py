"""CRM sync state: cursors, conflicts waiting for review, deletion tracking.

Revision ID: 0011
Revises: 00010
Create Date: 2026-11-29 11:45:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the work on this revision


def downgrade() -> None:
    pass
