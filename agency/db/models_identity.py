"""Identity tables: service identities, signing keys, refresh-token families, API keys.

Secrets are never stored: refresh tokens and API keys as SHA-256 digests, passwords as argon2
hashes (on ``users``), signing keys' private halves encrypted (agency.security.signing_keys).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )


def _scopes() -> Mapped[list[str]]:
    return mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"), nullable=False)


def _timestamp() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False)


def _optional_timestamp() -> Mapped[datetime | None]:
    return mapped_column(DateTime(timezone=True))


class ServiceIdentity(Base):
    """A non-human principal (an agent, an integration) of one tenant, limited to its scopes."""

    __tablename__ = "service_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str]
    scopes: Mapped[list[str]] = _scopes()
    # SHA-256 of a client secret for the client-credentials grant; None until one is issued.
    secret_hash: Mapped[str | None]
    created_at: Mapped[datetime] = _created_at()
    disabled_at: Mapped[datetime | None] = _optional_timestamp()


class SigningKey(Base):
    """A JWT signing key pair, published by ``kid`` in the JWKS while it still verifies.

    Production should keep private keys in a KMS or secret store; here the private JWK is
    encrypted at rest (AES-256-GCM, key derived from settings.secret_key) so a database dump
    alone cannot mint tokens.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint(
            "verify_until IS NULL OR retired_at IS NOT NULL", name="verify_until_only_when_retired"
        ),
    )

    kid: Mapped[str] = mapped_column(primary_key=True)
    algorithm: Mapped[str]
    public_jwk: Mapped[dict[str, Any]]
    # Encrypted envelope {"enc", "iv", "ct"} around the private JWK, never the JWK itself.
    private_jwk: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = _timestamp()
    # Set: the key no longer signs. verify_until passed: it no longer verifies either.
    retired_at: Mapped[datetime | None] = _optional_timestamp()
    verify_until: Mapped[datetime | None] = _optional_timestamp()


class RefreshToken(Base):
    """One issued refresh token; every rotation adds a row to the same family.

    Only the SHA-256 of the token is stored. A family ends on logout, on reuse of a used token
    (theft detection) or at ``family_expires_at``, whichever comes first.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        CheckConstraint(
            "(user_id IS NULL) <> (service_identity_id IS NULL)", name="exactly_one_subject"
        ),
        CheckConstraint("expires_at <= family_expires_at", name="expires_within_family"),
        Index("ix_refresh_tokens_family_id", "family_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    token_hash: Mapped[str] = mapped_column(unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    service_identity_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("service_identities.id", ondelete="CASCADE")
    )
    issued_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime] = _timestamp()
    family_expires_at: Mapped[datetime] = _timestamp()
    used_at: Mapped[datetime | None] = _optional_timestamp()
    revoked_at: Mapped[datetime | None] = _optional_timestamp()
    revoked_reason: Mapped[str | None]


class ApiKey(Base):
    """A machine client's key ``agk_live_<lookup_id>_<secret>``; only SHA-256(secret) is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("name <> ''", name="name_not_empty"),
        Index("ix_api_keys_tenant_id", "tenant_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str]
    lookup_id: Mapped[str] = mapped_column(unique=True)
    key_hash: Mapped[str]
    scopes: Mapped[list[str]] = _scopes()
    created_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime | None] = _optional_timestamp()
    last_used_at: Mapped[datetime | None] = _optional_timestamp()
    revoked_at: Mapped[datetime | None] = _optional_timestamp()
    # Set on rotation: the successor key, and when this key stops working.
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    overlap_until: Mapped[datetime | None] = _optional_timestamp()
