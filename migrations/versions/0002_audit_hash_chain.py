"""Audit log hash chain.

Adds outcome, request_id, prev_hash and hash to audit_events, chains the existing records in
id order, and creates the single-row audit_chain_head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The backfill must hash exactly as the verifier does, so it uses the same function.
from agency.security.audit import GENESIS_HASH, AuditFields, record_hash

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL_BATCH = 1000

_audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("tenant_id", sa.UUID()),
    sa.column("actor", sa.Text()),
    sa.column("action", sa.Text()),
    sa.column("subject_type", sa.Text()),
    sa.column("subject_id", sa.Text()),
    sa.column("outcome", sa.Text()),
    sa.column("request_id", sa.Text()),
    sa.column("detail", postgresql.JSONB()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("prev_hash", sa.Text()),
    sa.column("hash", sa.Text()),
)


def _chain_existing_records() -> tuple[int | None, str, int]:
    """Hash the records already present, in id order, in bounded batches; returns the head."""
    bind = op.get_bind()
    t = _audit_events
    last_id: int | None = None
    last_hash = GENESIS_HASH
    count = 0
    while True:
        query = sa.select(t).order_by(t.c.id).limit(_BACKFILL_BATCH)
        if last_id is not None:
            query = query.where(t.c.id > last_id)
        rows = bind.execute(query).all()
        if not rows:
            return last_id, last_hash, count
        updates = []
        for row in rows:
            digest = record_hash(last_hash, AuditFields.from_row(row))
            updates.append({"row_id": row.id, "prev": last_hash, "digest": digest})
            last_id, last_hash = row.id, digest
            count += 1
        bind.execute(
            t.update()
            .where(t.c.id == sa.bindparam("row_id"))
            .values(prev_hash=sa.bindparam("prev"), hash=sa.bindparam("digest")),
            updates,
        )


def upgrade() -> None:
    op.add_column(
        "audit_events", sa.Column("outcome", sa.Text(), server_default=sa.text("'ok'"), nullable=False)
    )
    op.add_column("audit_events", sa.Column("request_id", sa.Text(), nullable=True))
    op.add_column("audit_events", sa.Column("prev_hash", sa.Text(), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.Text(), nullable=True))

    last_id, last_hash, count = _chain_existing_records()

    op.alter_column("audit_events", "prev_hash", existing_type=sa.Text(), nullable=False)
    op.alter_column("audit_events", "hash", existing_type=sa.Text(), nullable=False)
    op.create_unique_constraint(op.f("uq_audit_events_prev_hash"), "audit_events", ["prev_hash"])
    op.create_unique_constraint(op.f("uq_audit_events_hash"), "audit_events", ["hash"])

    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=True),
        sa.Column("last_hash", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": last_id, "last_hash": last_hash, "count": count}])


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_constraint(op.f("uq_audit_events_hash"), "audit_events", type_="unique")
    op.drop_constraint(op.f("uq_audit_events_prev_hash"), "audit_events", type_="unique")
    for column in ("hash", "prev_hash", "request_id", "outcome"):
        op.drop_column("audit_events", column)
