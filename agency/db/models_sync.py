"""CRM sync bookkeeping: per-tenant cursors, conflicts waiting for a person, deletions seen.

Same Base and naming convention as agency.db.models (migration 0011). The synced records
themselves live in ``contacts``/``companies`` (models_contacts) with their own snapshot.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Index, Integer, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at, _in, _updated_at

SYNC_OBJECT_TYPES = ("companies", "contacts")
CONFLICT_STATUSES = ("pending", "resolved")
# ours/theirs/value: a person's choice; superseded: the sides agreed again before anyone chose.
CONFLICT_RESOLUTIONS = ("ours", "theirs", "value", "superseded")
DELETION_SIDES = ("crm", "ours")
DELETION_ACTIONS = ("tombstone", "recreate", "review", "archive", "keep")


class CrmSyncState(Base):
    """Where a tenant's sync of one object type stands: pull cursor, push cursor, last run."""

    __tablename__ = "crm_sync_states"
    __table_args__ = (
        UniqueConstraint("tenant_id", "object_type"),
        CheckConstraint(_in("object_type", SYNC_OBJECT_TYPES), name="object_type_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    object_type: Mapped[str]
    # Pull: CRM records modified at/after pull_since, page token pull_after within that query;
    # pull_max_seen becomes the next pull_since when the query is read to its end.
    pull_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pull_after: Mapped[str | None]
    pull_max_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Push: our rows after (push_since, push_after_id) in (updated_at, id) order.
    push_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    push_after_id: Mapped[uuid.UUID | None]
    # Archived CRM records: a pass over the archived listing (page token archived_after); each
    # deletion is handled once (crm_sync_deletions), archived_since is the latest one handled.
    archived_after: Mapped[str | None]
    archived_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rounds: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_round_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Counters of the last completed round and since the start (pulled, pushed, created, ...).
    last_stats: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    totals: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class SyncConflict(Base):
    """A field both sides edited that the policy leaves to a person (the review queue)."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        # One open conflict per record field; a newer disagreement updates it.
        Index(
            "uq_sync_conflicts_pending_field",
            "tenant_id", "object_type", "local_id", "field",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_sync_conflicts_tenant_id_status", "tenant_id", "status"),
        CheckConstraint(_in("object_type", SYNC_OBJECT_TYPES), name="object_type_valid"),
        CheckConstraint(_in("status", CONFLICT_STATUSES), name="status_valid"),
        CheckConstraint(f"resolution IS NULL OR {_in('resolution', CONFLICT_RESOLUTIONS)}", name="resolution_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    object_type: Mapped[str]
    local_id: Mapped[uuid.UUID]
    crm_id: Mapped[str | None]
    # A synced field name, or "_record" for a deletion the policy sends to review.
    field: Mapped[str]
    ours: Mapped[str | None]
    theirs: Mapped[str | None]
    ours_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    theirs_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(server_default="pending")
    resolution: Mapped[str | None]
    resolved_value: Mapped[str | None]
    resolved_by: Mapped[str | None]
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class CrmSyncDeletion(Base):
    """A deletion seen on one side and what the policy did about it (each handled once)."""

    __tablename__ = "crm_sync_deletions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "object_type", "crm_id", "side"),
        CheckConstraint(_in("object_type", SYNC_OBJECT_TYPES), name="object_type_valid"),
        CheckConstraint(_in("side", DELETION_SIDES), name="side_valid"),
        CheckConstraint(_in("action", DELETION_ACTIONS), name="action_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    object_type: Mapped[str]
    local_id: Mapped[uuid.UUID | None]
    crm_id: Mapped[str]
    side: Mapped[str]
    action: Mapped[str]
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seen_at: Mapped[datetime] = _created_at()
