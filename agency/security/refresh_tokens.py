"""Opaque refresh tokens, rotated on every use and grouped in families.

Each rotation marks the presented token used and issues its successor in the same family.
Presenting a used token again means two parties hold it (one of them stole it): the whole
family is revoked, so the thief's and the victim's tokens both die (OAuth 2.0 Security BCP,
refresh token rotation). Every token has an idle lifetime and every family an absolute one
(OWASP ASVS 5.0 V10.4.8) that rotation cannot extend.

Only SHA-256 of a token is stored. The tokens are 256-bit random values, so a fast hash is
right here; a slow password hash (argon2) protects low-entropy secrets and would only add
latency and a denial-of-service lever.

``rotate_refresh_token`` and ``revoke_family`` are units of work of their own and commit in
every outcome: a reuse-triggered revocation must survive the ``RefreshTokenReused`` raised
right after it, and the row lock must not outlive the call. Call them on a session with no
other pending work.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models_identity import RefreshToken
from agency.settings import Settings, get_settings

RefreshRejection = Literal["unknown", "revoked", "expired", "family_expired", "reused"]


class RefreshTokenError(Exception):
    def __init__(self, reason: RefreshRejection) -> None:
        super().__init__(reason)
        self.reason: RefreshRejection = reason


class RefreshTokenRejected(RefreshTokenError):
    """Unknown, revoked or expired: the client must log in again."""


class RefreshTokenReused(RefreshTokenError):
    """An already-used token was presented; its family has been revoked."""

    def __init__(self, family_id: uuid.UUID) -> None:
        super().__init__("reused")
        self.family_id = family_id


@dataclass(frozen=True)
class IssuedRefreshToken:
    token: str  # the secret: hand to the client once, never log or store it
    id: uuid.UUID
    family_id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID | None
    service_identity_id: uuid.UUID | None
    expires_at: datetime
    family_expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedRefreshToken(id={self.id}, family_id={self.family_id}, expires_at={self.expires_at})"


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_refresh_token(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
    service_identity_id: uuid.UUID | None = None,
    now: datetime,
    settings: Settings | None = None,
) -> IssuedRefreshToken:
    """Starts a new family (a login). Flushes; the caller commits with the rest of the login."""
    if (user_id is None) == (service_identity_id is None):
        raise ValueError("exactly one of user_id and service_identity_id is required")
    settings = settings or get_settings()
    family_expires_at = now + timedelta(seconds=settings.refresh_token_absolute_ttl_s)
    return await _insert(
        session,
        family_id=uuid.uuid4(),
        tenant_id=tenant_id,
        user_id=user_id,
        service_identity_id=service_identity_id,
        now=now,
        family_expires_at=family_expires_at,
        settings=settings,
    )


async def rotate_refresh_token(
    session: AsyncSession, presented: str, *, now: datetime, settings: Settings | None = None
) -> IssuedRefreshToken:
    """Exchanges ``presented`` for its successor. Commits in every outcome.

    The row is locked (SELECT ... FOR UPDATE), so of two concurrent rotations of one token the
    second waits, then sees it used and is handled as reuse.
    """
    settings = settings or get_settings()
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(presented)).with_for_update()
    )
    if row is None:
        await session.commit()
        raise RefreshTokenRejected("unknown")
    if row.revoked_at is not None:
        await session.commit()
        raise RefreshTokenRejected("revoked")
    if row.used_at is not None:
        family_id = row.family_id
        await _revoke_family(session, family_id, now=now, reason="reuse_detected")
        await session.commit()
        raise RefreshTokenReused(family_id)
    if now >= row.family_expires_at:
        await session.commit()
        raise RefreshTokenRejected("family_expired")
    if now >= row.expires_at:
        await session.commit()
        raise RefreshTokenRejected("expired")

    row.used_at = now
    successor = await _insert(
        session,
        family_id=row.family_id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        service_identity_id=row.service_identity_id,
        now=now,
        family_expires_at=row.family_expires_at,
        settings=settings,
    )
    await session.commit()
    return successor


async def revoke_family(
    session: AsyncSession, presented: str, *, now: datetime, reason: str = "logout"
) -> uuid.UUID | None:
    """Logout: revokes the family of ``presented`` and returns its id. Commits. None if unknown."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_refresh_token(presented))
    )
    if family_id is None:
        await session.commit()
        return None
    await _revoke_family(session, family_id, now=now, reason=reason)
    await session.commit()
    return family_id


async def revoke_family_by_id(session: AsyncSession, family_id: uuid.UUID, *, now: datetime, reason: str) -> None:
    """Ends one family (e.g. its user was disabled). Flushes; the caller commits."""
    await _revoke_family(session, family_id, now=now, reason=reason)


async def revoke_all_for_user(session: AsyncSession, user_id: uuid.UUID, *, now: datetime, reason: str) -> int:
    """Ends every session of a user (password change, account disabled). Flushes; caller commits."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, *, now: datetime, reason: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session="fetch")
    )


async def _insert(
    session: AsyncSession,
    *,
    family_id: uuid.UUID,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    service_identity_id: uuid.UUID | None,
    now: datetime,
    family_expires_at: datetime,
    settings: Settings,
) -> IssuedRefreshToken:
    token = secrets.token_urlsafe(32)
    row = RefreshToken(
        id=uuid.uuid4(),
        family_id=family_id,
        token_hash=hash_refresh_token(token),
        tenant_id=tenant_id,
        user_id=user_id,
        service_identity_id=service_identity_id,
        issued_at=now,
        # Rotation renews the idle lifetime but never past the family's absolute end.
        expires_at=min(now + timedelta(seconds=settings.refresh_token_ttl_s), family_expires_at),
        family_expires_at=family_expires_at,
    )
    session.add(row)
    await session.flush()
    return IssuedRefreshToken(
        token=token,
        id=row.id,
        family_id=family_id,
        tenant_id=tenant_id,
        user_id=user_id,
        service_identity_id=service_identity_id,
        expires_at=row.expires_at,
        family_expires_at=family_expires_at,
    )
