"""API keys: shown once, stored hashed, scoped, expiring, rotated with an overlap, revoked at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import Tenant
from agency.db.models_identity import ApiKey
from agency.security.api_keys import (
    API_KEY_PREFIX,
    ApiKeyRejected,
    create_api_key,
    hash_api_key,
    revoke_api_key,
    rotate_api_key,
    verify_api_key,
)
from agency.settings import Settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OVERLAP = timedelta(hours=1)
SETTINGS = Settings(api_key_rotation_overlap_s=int(OVERLAP.total_seconds()))


async def _tenant(session: AsyncSession) -> uuid.UUID:
    tenant = Tenant(slug=f"t-{uuid.uuid4().hex[:10]}", name="Tenant")
    session.add(tenant)
    await session.flush()
    return tenant.id


def _secret_of(key: str) -> str:
    # agk_live_ + 16 hex lookup id + "_"; the secret itself may contain "_".
    return key[len(API_KEY_PREFIX) + 17 :]


async def _rejection(session: AsyncSession, key: str, now: datetime) -> str:
    with pytest.raises(ApiKeyRejected) as caught:
        await verify_api_key(session, key, now=now)
    return caught.value.reason


async def test_created_key_is_prefixed_shown_once_and_stored_hashed(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    issued = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=["campaigns:read"], now=NOW)
    assert issued.key.startswith(f"{API_KEY_PREFIX}{issued.lookup_id}_")
    assert issued.key not in repr(issued)

    row = await db_session.get(ApiKey, issued.id)
    assert row is not None
    assert row.key_hash == hash_api_key(issued.key)
    secret = _secret_of(issued.key)
    assert all(secret not in str(value) for value in (row.key_hash, row.lookup_id, row.name))

    verified = await verify_api_key(db_session, issued.key, now=NOW)
    assert (verified.id, verified.tenant_id, verified.scopes) == (issued.id, tenant_id, ("campaigns:read",))


async def test_wrong_secret_or_malformed_key_is_rejected(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    issued = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=[], now=NOW)
    secret = _secret_of(issued.key)
    forged = issued.key[: -len(secret)] + ("A" if secret[0] != "A" else "B") + secret[1:]
    assert await _rejection(db_session, forged, NOW) == "unknown"
    assert await _rejection(db_session, f"{API_KEY_PREFIX}{'0' * 16}_{secret}", NOW) == "unknown"
    for malformed in ("", issued.key + "x", issued.key.replace("agk_live_", "agk_test_"), issued.lookup_id):
        assert await _rejection(db_session, malformed, NOW) == "malformed"


async def test_revoked_key_is_rejected_immediately(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    issued = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=[], now=NOW)
    await verify_api_key(db_session, issued.key, now=NOW)
    assert await revoke_api_key(db_session, tenant_id=tenant_id, key_id=issued.id, now=NOW) is True
    assert await _rejection(db_session, issued.key, NOW) == "revoked"
    assert await revoke_api_key(db_session, tenant_id=tenant_id, key_id=issued.id, now=NOW) is False


async def test_another_tenant_cannot_revoke_or_rotate_the_key(db_session: AsyncSession) -> None:
    owner, intruder = await _tenant(db_session), await _tenant(db_session)
    issued = await create_api_key(db_session, tenant_id=owner, name="ci", scopes=[], now=NOW)
    assert await revoke_api_key(db_session, tenant_id=intruder, key_id=issued.id, now=NOW) is False
    with pytest.raises(ApiKeyRejected):
        await rotate_api_key(db_session, tenant_id=intruder, key_id=issued.id, now=NOW, settings=SETTINGS)
    await verify_api_key(db_session, issued.key, now=NOW)


async def test_expired_key_is_rejected(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    expires = NOW + timedelta(days=30)
    issued = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=[], now=NOW, expires_at=expires)
    await verify_api_key(db_session, issued.key, now=expires - timedelta(seconds=1))
    assert await _rejection(db_session, issued.key, expires) == "expired"
    with pytest.raises(ValueError):
        await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=[], now=NOW, expires_at=NOW)


async def test_rotated_key_is_valid_only_inside_the_overlap(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    old = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=["a", "b"], now=NOW)
    rotated_at = NOW + timedelta(days=1)
    new = await rotate_api_key(db_session, tenant_id=tenant_id, key_id=old.id, now=rotated_at, settings=SETTINGS)

    assert new.key != old.key and new.scopes == ("a", "b") and new.name == "ci"
    # Inside the overlap both keys work.
    await verify_api_key(db_session, old.key, now=rotated_at + OVERLAP - timedelta(seconds=1))
    await verify_api_key(db_session, new.key, now=rotated_at + OVERLAP - timedelta(seconds=1))
    # From the end of the overlap on, only the new key does.
    assert await _rejection(db_session, old.key, rotated_at + OVERLAP) == "rotated_out"
    assert await _rejection(db_session, old.key, rotated_at + OVERLAP * 10) == "rotated_out"
    await verify_api_key(db_session, new.key, now=rotated_at + OVERLAP * 10)

    row = await db_session.get(ApiKey, old.id)
    assert row is not None and row.replaced_by_id == new.id and row.overlap_until == rotated_at + OVERLAP
    # A rotated key can't be rotated again (that would leave two successors).
    with pytest.raises(ApiKeyRejected) as caught:
        await rotate_api_key(db_session, tenant_id=tenant_id, key_id=old.id, now=rotated_at, settings=SETTINGS)
    assert caught.value.reason == "rotated_out"


async def test_revoke_during_the_overlap_still_cuts_the_old_key_off(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    old = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=[], now=NOW)
    await rotate_api_key(db_session, tenant_id=tenant_id, key_id=old.id, now=NOW, settings=SETTINGS)
    await revoke_api_key(db_session, tenant_id=tenant_id, key_id=old.id, now=NOW + timedelta(minutes=1))
    assert await _rejection(db_session, old.key, NOW + timedelta(minutes=2)) == "revoked"


async def test_last_used_is_recorded_at_most_once_a_minute(db_session: AsyncSession) -> None:
    tenant_id = await _tenant(db_session)
    issued = await create_api_key(db_session, tenant_id=tenant_id, name="ci", scopes=[], now=NOW)

    async def last_used() -> datetime | None:
        return await db_session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == issued.id))

    assert await last_used() is None
    await verify_api_key(db_session, issued.key, now=NOW)
    assert await last_used() == NOW
    await verify_api_key(db_session, issued.key, now=NOW + timedelta(seconds=59))
    assert await last_used() == NOW
    await verify_api_key(db_session, issued.key, now=NOW + timedelta(seconds=61))
    assert await last_used() == NOW + timedelta(seconds=61)
