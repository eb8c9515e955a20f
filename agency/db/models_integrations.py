"""Tenant credentials for provider adapters: versioned, encrypted at rest, rotated with overlap.

A ``PUT`` of a new credential adds version N+1 as ``active`` and turns the previous active one
``retiring`` until ``retire_after`` (both work meanwhile, so workers switch without a restart);
``retired`` versions are kept as history with their ciphertext erased. The secret is a Fernet
token (``ciphertext``) made with the key whose fingerprint is ``key_id``. Migration 0010.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at, _in

# 0013 added wordpress and instagram (the check constraint lists them all).
PROVIDERS = ("hubspot", "ga4", "google-ads", "linkedin", "x", "resend", "wordpress", "instagram")
CREDENTIAL_STATUSES = ("active", "retiring", "retired")


class IntegrationCredential(Base):
    __tablename__ = "integration_credentials"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "version"),
        # At most one active version per tenant and provider: the one adapters use first.
        Index(
            "uq_integration_credentials_tenant_id_provider_active",
            "tenant_id",
            "provider",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        CheckConstraint(_in("provider", PROVIDERS), name="provider_valid"),
        CheckConstraint(_in("status", CREDENTIAL_STATUSES), name="status_valid"),
        CheckConstraint("version >= 1", name="version_positive"),
        # Only retired versions may have lost their secret.
        CheckConstraint("ciphertext IS NOT NULL OR status = 'retired'", name="ciphertext_until_retired"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str]
    version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[str | None]  # Fernet token of the JSON secret; NULL once retired
    key_id: Mapped[str]  # fingerprint of the Fernet key that encrypted it
    status: Mapped[str] = mapped_column(server_default="active")
    created_by: Mapped[str]
    created_at: Mapped[datetime] = _created_at()
    retire_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
