"""The tenant's own store of contacts and companies: what imports clean into and CRM sync mirrors.

Sync bookkeeping lives on each row: ``crm_id`` links it to the CRM record, ``field_modified_at``
holds per-field edit times (newest-wins needs them), ``synced_hash`` is the hash of the field
values both sides agreed on at the last sync (a side whose current hash differs was edited since),
and ``deleted_at`` tombstones a record instead of dropping it, so a delete can be synced too.
Same Base and naming convention as agency.db.models (migration 0009).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at, _in, _updated_at

RECORD_SOURCES = ("import", "crm", "api")


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = (
        # One live company per domain; tombstoned rows keep their domain without blocking a new one.
        Index(
            "uq_companies_tenant_id_domain_live",
            "tenant_id",
            "domain",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND domain IS NOT NULL"),
        ),
        Index("uq_companies_tenant_id_crm_id", "tenant_id", "crm_id", unique=True, postgresql_where=text("crm_id IS NOT NULL")),
        CheckConstraint(_in("source", RECORD_SOURCES), name="source_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str]
    domain: Mapped[str | None]  # lower-case host, no scheme or "www."
    properties: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    field_modified_at: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    source: Mapped[str] = mapped_column(server_default="api")
    crm_id: Mapped[str | None]
    synced_hash: Mapped[str | None]
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index(
            "uq_contacts_tenant_id_email_live",
            "tenant_id",
            "email",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND email IS NOT NULL"),
        ),
        Index("uq_contacts_tenant_id_crm_id", "tenant_id", "crm_id", unique=True, postgresql_where=text("crm_id IS NOT NULL")),
        CheckConstraint(_in("source", RECORD_SOURCES), name="source_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None]  # normalized (lower-case domain, trimmed)
    phone: Mapped[str | None]  # E.164
    first_name: Mapped[str | None]
    last_name: Mapped[str | None]
    job_title: Mapped[str | None]
    lifecycle_stage: Mapped[str | None]
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    # UTM parameters of the first touch, normalized (lower-case keys utm_source..utm_content).
    utm: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    properties: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    field_modified_at: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    source: Mapped[str] = mapped_column(server_default="api")
    crm_id: Mapped[str | None]
    synced_hash: Mapped[str | None]
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
