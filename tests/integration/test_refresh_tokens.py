"""Refresh-token rotation, reuse detection with family revocation, lifetimes, logout, login."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agency.db.models import Tenant, User
from agency.db.models_identity import RefreshToken, ServiceIdentity
from agency.security.passwords import authenticate_user, hash_password
from agency.security.refresh_tokens import (
    IssuedRefreshToken,
    RefreshTokenRejected,
    RefreshTokenReused,
    hash_refresh_token,
    issue_refresh_token,
    revoke_all_for_user,
    revoke_family,
    rotate_refresh_token,
)
from agency.settings import Settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = Settings(refresh_token_ttl_s=3600, refresh_token_absolute_ttl_s=3 * 3600)


async def _user(session: AsyncSession, *, password: str | None = None) -> User:
    tenant = Tenant(slug=f"t-{uuid.uuid4().hex[:10]}", name="Tenant")
    session.add(tenant)
    await session.flush()
    user = User(
        tenant_id=tenant.id,
        email="ada@example.com",
        role="editor",
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    await session.flush()
    return user


async def _login(session: AsyncSession, user: User) -> IssuedRefreshToken:
    return await issue_refresh_token(session, tenant_id=user.tenant_id, user_id=user.id, now=NOW, settings=SETTINGS)


async def _family(session: AsyncSession, family_id: uuid.UUID) -> list[RefreshToken]:
    rows = await session.scalars(
        select(RefreshToken).where(RefreshToken.family_id == family_id).order_by(RefreshToken.issued_at)
    )
    return list(rows.all())


async def test_rotation_issues_a_new_token_in_the_same_family(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    first = await _login(db_session, user)
    second = await rotate_refresh_token(db_session, first.token, now=NOW + timedelta(minutes=10), settings=SETTINGS)

    assert second.token != first.token and second.family_id == first.family_id
    assert (second.user_id, second.tenant_id) == (user.id, user.tenant_id)
    assert second.expires_at == NOW + timedelta(minutes=10, seconds=3600)
    rows = await _family(db_session, first.family_id)
    assert [row.used_at for row in rows] == [NOW + timedelta(minutes=10), None]
    # Only digests are stored.
    assert {row.token_hash for row in rows} == {hash_refresh_token(first.token), hash_refresh_token(second.token)}
    assert first.token not in {row.token_hash for row in rows}


async def test_reusing_a_used_token_revokes_the_whole_family(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    stolen = await _login(db_session, user)
    legit = await rotate_refresh_token(db_session, stolen.token, now=NOW + timedelta(minutes=1), settings=SETTINGS)
    other_session = await _login(db_session, user)

    with pytest.raises(RefreshTokenReused) as caught:
        await rotate_refresh_token(db_session, stolen.token, now=NOW + timedelta(minutes=2), settings=SETTINGS)
    assert caught.value.family_id == stolen.family_id

    # The current (legitimate) token of that family died with it.
    with pytest.raises(RefreshTokenRejected) as rejected:
        await rotate_refresh_token(db_session, legit.token, now=NOW + timedelta(minutes=3), settings=SETTINGS)
    assert rejected.value.reason == "revoked"
    rows = await _family(db_session, stolen.family_id)
    assert {(row.revoked_at, row.revoked_reason) for row in rows} == {(NOW + timedelta(minutes=2), "reuse_detected")}

    # Another family (another device) is untouched.
    await rotate_refresh_token(db_session, other_session.token, now=NOW + timedelta(minutes=3), settings=SETTINGS)


async def test_reuse_revocation_survives_the_exception(db_session: AsyncSession) -> None:
    """The revocation is committed before RefreshTokenReused propagates: a caller's rollback can't undo it."""
    user = await _user(db_session)
    first = await _login(db_session, user)
    await rotate_refresh_token(db_session, first.token, now=NOW, settings=SETTINGS)
    with pytest.raises(RefreshTokenReused):
        await rotate_refresh_token(db_session, first.token, now=NOW, settings=SETTINGS)
    await db_session.rollback()  # what an error handler would do
    rows = await _family(db_session, first.family_id)
    assert rows and all(row.revoked_at is not None for row in rows)


async def test_expired_token_is_rejected(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    issued = await _login(db_session, user)
    with pytest.raises(RefreshTokenRejected) as caught:
        await rotate_refresh_token(db_session, issued.token, now=issued.expires_at, settings=SETTINGS)
    assert caught.value.reason == "expired"
    # Rejection is not use: the row stays unused, no successor appeared.
    rows = await _family(db_session, issued.family_id)
    assert len(rows) == 1 and rows[0].used_at is None


async def test_family_absolute_lifetime_cannot_be_extended_by_rotation(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    token = await _login(db_session, user)
    family_end = NOW + timedelta(hours=3)
    assert token.family_expires_at == family_end
    # Rotating every 50 minutes keeps each token fresh, but the family still ends at 3 h.
    at = NOW
    for _ in range(3):
        at += timedelta(minutes=50)
        token = await rotate_refresh_token(db_session, token.token, now=at, settings=SETTINGS)
        assert token.expires_at <= family_end
    assert token.expires_at == family_end  # idle lifetime capped by the family's end
    with pytest.raises(RefreshTokenRejected) as caught:
        await rotate_refresh_token(db_session, token.token, now=family_end, settings=SETTINGS)
    assert caught.value.reason == "family_expired"


async def test_unknown_token_is_rejected(db_session: AsyncSession) -> None:
    with pytest.raises(RefreshTokenRejected) as caught:
        await rotate_refresh_token(db_session, "not-a-token", now=NOW, settings=SETTINGS)
    assert caught.value.reason == "unknown"


async def test_logout_revokes_the_family(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    first = await _login(db_session, user)
    current = await rotate_refresh_token(db_session, first.token, now=NOW, settings=SETTINGS)

    assert await revoke_family(db_session, current.token, now=NOW + timedelta(minutes=1)) == current.family_id
    with pytest.raises(RefreshTokenRejected) as caught:
        await rotate_refresh_token(db_session, current.token, now=NOW + timedelta(minutes=2), settings=SETTINGS)
    assert caught.value.reason == "revoked"
    assert {row.revoked_reason for row in await _family(db_session, first.family_id)} == {"logout"}
    assert await revoke_family(db_session, "unknown-token", now=NOW) is None


async def test_revoke_all_for_user_ends_every_family(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    a, b = await _login(db_session, user), await _login(db_session, user)
    assert await revoke_all_for_user(db_session, user.id, now=NOW, reason="password_changed") == 2
    for token in (a, b):
        with pytest.raises(RefreshTokenRejected):
            await rotate_refresh_token(db_session, token.token, now=NOW, settings=SETTINGS)


async def test_service_identity_tokens_and_subject_rules(db_session: AsyncSession) -> None:
    user = await _user(db_session)
    service = ServiceIdentity(tenant_id=user.tenant_id, name="scheduler", scopes=["campaigns:write"])
    db_session.add(service)
    await db_session.flush()
    issued = await issue_refresh_token(
        db_session, tenant_id=user.tenant_id, service_identity_id=service.id, now=NOW, settings=SETTINGS
    )
    rotated = await rotate_refresh_token(db_session, issued.token, now=NOW, settings=SETTINGS)
    assert rotated.service_identity_id == service.id and rotated.user_id is None
    with pytest.raises(ValueError):
        await issue_refresh_token(db_session, tenant_id=user.tenant_id, now=NOW, settings=SETTINGS)
    with pytest.raises(ValueError):
        await issue_refresh_token(
            db_session, tenant_id=user.tenant_id, user_id=user.id, service_identity_id=service.id, now=NOW
        )


async def test_concurrent_rotations_of_one_token_exactly_one_wins(db_engine: AsyncEngine) -> None:
    """Two requests race with the same token: one rotates, the other is handled as reuse.

    A third connection holds the row lock while both start, so both are in flight at once; without
    SELECT ... FOR UPDATE both would read the row as unused and both would succeed.
    """
    async with AsyncSession(db_engine, expire_on_commit=False) as setup:
        user = await _user(setup)
        issued = await _login(setup, user)
        await setup.commit()
    try:
        async with db_engine.connect() as holder:
            await holder.execute(
                text("SELECT id FROM refresh_tokens WHERE token_hash = :h FOR UPDATE"),
                {"h": hash_refresh_token(issued.token)},
            )

            async def attempt() -> object:
                async with AsyncSession(db_engine, expire_on_commit=False) as session:
                    return await rotate_refresh_token(session, issued.token, now=NOW, settings=SETTINGS)

            racers = [asyncio.create_task(attempt()) for _ in range(2)]
            await asyncio.sleep(0.3)  # both now wait on the lock
            assert not any(task.done() for task in racers)
            await holder.rollback()
            results = await asyncio.gather(*racers, return_exceptions=True)

        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1
        assert isinstance(losers[0], RefreshTokenReused)
        async with AsyncSession(db_engine) as check:
            rows = await _family(check, issued.family_id)
            assert len(rows) == 2  # the original and exactly one successor
            assert all(row.revoked_reason == "reuse_detected" for row in rows)
    finally:
        async with db_engine.begin() as cleanup:
            await cleanup.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": user.tenant_id})


async def test_authenticate_user(db_session: AsyncSession) -> None:
    user = await _user(db_session, password="s3cret-passphrase")
    tenant = await db_session.get(Tenant, user.tenant_id)
    assert tenant is not None
    found = await authenticate_user(db_session, tenant.slug, "ada@example.com", "s3cret-passphrase", now=NOW)
    assert found is not None and found.id == user.id
    assert await authenticate_user(db_session, tenant.slug, "ada@example.com", "wrong", now=NOW) is None
    assert await authenticate_user(db_session, tenant.slug, "bob@example.com", "s3cret-passphrase", now=NOW) is None
    assert await authenticate_user(db_session, "no-tenant", "ada@example.com", "s3cret-passphrase", now=NOW) is None
    user.disabled_at = NOW - timedelta(seconds=1)
    await db_session.flush()
    assert await authenticate_user(db_session, tenant.slug, "ada@example.com", "s3cret-passphrase", now=NOW) is None
