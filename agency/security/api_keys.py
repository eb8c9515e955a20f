"""API keys for machine clients: ``agk_live_<lookup_id>_<secret>``.

The full key is returned once, at creation or rotation; only its SHA-256 is stored (the secret
is 256 random bits, so a fast hash suffices, unlike passwords). The lookup id finds the row;
the digest comparison is constant-time. Rotation issues a successor and keeps the old key valid
until ``overlap_until`` so clients can switch without downtime; revocation is immediate.

Functions flush; the caller commits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models_identity import ApiKey
from agency.settings import Settings, get_settings

API_KEY_PREFIX = "agk_live_"
# last_used_at is informational: writing it on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_KEY_PATTERN = re.compile(r"agk_live_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")

ApiKeyRejection = Literal["malformed", "unknown", "revoked", "expired", "rotated_out"]


class ApiKeyRejected(Exception):
    def __init__(self, reason: ApiKeyRejection) -> None:
        super().__init__(reason)
        self.reason: ApiKeyRejection = reason


@dataclass(frozen=True)
class IssuedApiKey:
    id: uuid.UUID
    key: str  # shown to the client once; never log or store it
    lookup_id: str
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"IssuedApiKey(id={self.id}, lookup_id={self.lookup_id!r}, name={self.name!r})"


@dataclass(frozen=True)
class VerifiedApiKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    scopes: tuple[str, ...]


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    name: str,
    scopes: Sequence[str],
    now: datetime,
    expires_at: datetime | None = None,
) -> IssuedApiKey:
    if not name:
        raise ValueError("an API key needs a name")
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires_at must lie in the future")
    lookup_id = secrets.token_hex(8)
    key = f"{API_KEY_PREFIX}{lookup_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        name=name,
        lookup_id=lookup_id,
        key_hash=hash_api_key(key),
        scopes=list(scopes),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return IssuedApiKey(
        id=row.id, key=key, lookup_id=lookup_id, name=name, scopes=tuple(scopes), expires_at=expires_at
    )


async def verify_api_key(session: AsyncSession, presented: str, *, now: datetime) -> VerifiedApiKey:
    """The key's identity and scopes, or ``ApiKeyRejected``. Records last use (at most once a minute)."""
    match = _KEY_PATTERN.fullmatch(presented) if isinstance(presented, str) else None
    if match is None:
        raise ApiKeyRejected("malformed")
    row = await session.scalar(select(ApiKey).where(ApiKey.lookup_id == match.group(1)))
    # A wrong secret for an existing lookup id reads like an unknown key.
    if row is None or not hmac.compare_digest(row.key_hash, hash_api_key(presented)):
        raise ApiKeyRejected("unknown")
    if row.revoked_at is not None:
        raise ApiKeyRejected("revoked")
    if row.expires_at is not None and now >= row.expires_at:
        raise ApiKeyRejected("expired")
    if row.overlap_until is not None and now >= row.overlap_until:
        raise ApiKeyRejected("rotated_out")

    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional so concurrent requests don't all write; the ORM object is left as read.
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == row.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_RESOLUTION),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session="fetch")
        )
    return VerifiedApiKey(id=row.id, tenant_id=row.tenant_id, name=row.name, scopes=tuple(row.scopes))


async def rotate_api_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    key_id: uuid.UUID,
    now: datetime,
    overlap: timedelta | None = None,
    settings: Settings | None = None,
) -> IssuedApiKey:
    """Issues a successor with the same name, scopes and expiry; the old key works until now + overlap.

    Only a currently valid key that has not been rotated already can be rotated (rotating twice
    would leave two successors alive).
    """
    if overlap is None:
        overlap = timedelta(seconds=(settings or get_settings()).api_key_rotation_overlap_s)
    old = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id).with_for_update()
    )
    if old is None:
        raise ApiKeyRejected("unknown")
    if old.revoked_at is not None:
        raise ApiKeyRejected("revoked")
    if old.expires_at is not None and now >= old.expires_at:
        raise ApiKeyRejected("expired")
    if old.replaced_by_id is not None:
        raise ApiKeyRejected("rotated_out")
    successor = await create_api_key(
        session, tenant_id=tenant_id, name=old.name, scopes=old.scopes, now=now, expires_at=old.expires_at
    )
    old.replaced_by_id = successor.id
    old.overlap_until = now + overlap
    await session.flush()
    return successor


async def revoke_api_key(session: AsyncSession, *, tenant_id: uuid.UUID, key_id: uuid.UUID, now: datetime) -> bool:
    """Revokes immediately. False if no such key in this tenant or already revoked."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1
