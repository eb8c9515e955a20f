"""Creating users and service identities, and the client-credentials check, against PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import Tenant, User
from agency.db.models_identity import RefreshToken, ServiceIdentity
from agency.security.identities import (
    IdentityExists,
    IdentityNotFound,
    IssuedClientCredentials,
    authenticate_client,
    create_service_identity,
    create_user,
    disable_service_identity,
    rotate_service_secret,
)
from agency.security.passwords import authenticate_user
from agency.security.refresh_tokens import issue_refresh_token

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery staple"


def _tenant() -> str:
    return f"ident-{uuid.uuid4().hex[:10]}"


# ---- users ------------------------------------------------------------------------------
async def test_create_user_normalises_email_hashes_password_and_creates_the_tenant(db_session: AsyncSession) -> None:
    tenant = _tenant()
    user = await create_user(
        db_session, tenant_slug=tenant, email="  Ada.Lovelace@Example.COM ", role="marketer", password=PASSWORD, now=NOW
    )

    row = await db_session.scalar(select(User).where(User.id == user.id))
    assert row is not None
    assert row.email == "ada.lovelace@example.com"
    assert row.role == "marketer"
    assert row.created_at == NOW
    assert row.password_hash is not None and row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert await db_session.scalar(select(Tenant.id).where(Tenant.slug == tenant)) == row.tenant_id
    # The stored hash is what login checks.
    assert await authenticate_user(db_session, tenant, "ada.lovelace@example.com", PASSWORD, now=NOW) is not None
    assert await authenticate_user(db_session, tenant, "ada.lovelace@example.com", PASSWORD + "x", now=NOW) is None


async def test_a_user_without_password_cannot_log_in(db_session: AsyncSession) -> None:
    tenant = _tenant()
    user = await create_user(db_session, tenant_slug=tenant, email="sso@example.com", role="viewer", password=None)
    assert user.password_hash is None
    assert await authenticate_user(db_session, tenant, "sso@example.com", "", now=NOW) is None


async def test_duplicate_email_in_a_tenant_is_refused_and_the_transaction_survives(db_session: AsyncSession) -> None:
    tenant = _tenant()
    await create_user(db_session, tenant_slug=tenant, email="dup@example.com", role="viewer", password=PASSWORD)
    with pytest.raises(IdentityExists, match="dup@example.com"):
        # Differs only in case and whitespace: the same address after normalisation.
        await create_user(db_session, tenant_slug=tenant, email=" DUP@example.com", role="owner", password=PASSWORD)

    # The savepoint rolled back only the duplicate: the session still works, one row exists.
    count = (await db_session.scalars(select(User).where(User.email == "dup@example.com"))).all()
    assert len(count) == 1 and count[0].role == "viewer"
    # The same email in another tenant is a different person.
    other = await create_user(
        db_session, tenant_slug=_tenant(), email="dup@example.com", role="owner", password=PASSWORD
    )
    assert other.tenant_id != count[0].tenant_id


@pytest.mark.parametrize("role", ["superuser", "Owner", "", "editor"])
async def test_unknown_role_is_refused(db_session: AsyncSession, role: str) -> None:
    tenant = _tenant()
    with pytest.raises(ValueError, match="unknown role"):
        await create_user(db_session, tenant_slug=tenant, email="r@example.com", role=role, password=PASSWORD)
    assert await db_session.scalar(select(Tenant).where(Tenant.slug == tenant)) is None


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 12"), ("elevenchars", "at least 12"), ("", "at least 12"), ("x" * 1025, "at most 1024")],
)
async def test_password_outside_the_policy_is_refused(db_session: AsyncSession, password: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await create_user(db_session, tenant_slug=_tenant(), email="p@example.com", role="viewer", password=password)


async def test_password_at_the_policy_bounds_is_accepted(db_session: AsyncSession) -> None:
    tenant = _tenant()
    await create_user(db_session, tenant_slug=tenant, email="min@example.com", role="viewer", password="a" * 12)
    await create_user(db_session, tenant_slug=tenant, email="max@example.com", role="viewer", password="a" * 1024)


@pytest.mark.parametrize(
    "email", ["no-at-sign", "two@@example.com", "sp ace@example.com", "user@localhost", "@example.com"]
)
async def test_malformed_email_is_refused(db_session: AsyncSession, email: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        await create_user(db_session, tenant_slug=_tenant(), email=email, role="viewer", password=PASSWORD)


@pytest.mark.parametrize("slug", ["", "Upper", "with/slash", "with space", "x" * 65])
async def test_malformed_tenant_slug_is_refused(db_session: AsyncSession, slug: str) -> None:
    with pytest.raises(ValueError, match="not a tenant slug"):
        await create_user(db_session, tenant_slug=slug, email="s@example.com", role="viewer", password=PASSWORD)


# ---- service identities -------------------------------------------------------------------
async def _identity(session: AsyncSession, scopes: list[str] | None = None) -> IssuedClientCredentials:
    return await create_service_identity(
        session, tenant_slug=_tenant(), name="budget-agent", scopes=scopes or ["agent:budget", "metrics:read"]
    )


async def test_create_service_identity_stores_only_the_digest_and_authenticates(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    assert uuid.UUID(creds.client_id)
    assert len(creds.client_secret) >= 43  # 32 random bytes, base64url
    assert creds.client_secret not in repr(creds)

    row = await db_session.get(ServiceIdentity, uuid.UUID(creds.client_id))
    assert row is not None
    assert row.secret_hash == hashlib.sha256(creds.client_secret.encode()).hexdigest()
    assert row.scopes == ["agent:budget", "metrics:read"]

    identity = await authenticate_client(db_session, creds.client_id, creds.client_secret)
    assert identity is not None and identity.id == row.id and identity.name == "budget-agent"


async def test_each_identity_gets_its_own_secret(db_session: AsyncSession) -> None:
    first, second = await _identity(db_session), await _identity(db_session)
    assert first.client_secret != second.client_secret
    assert await authenticate_client(db_session, first.client_id, second.client_secret) is None


async def test_authenticate_client_rejects_wrong_secret_unknown_and_malformed_ids(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    assert await authenticate_client(db_session, creds.client_id, creds.client_secret + "x") is None
    assert await authenticate_client(db_session, creds.client_id, "") is None
    assert await authenticate_client(db_session, str(uuid.uuid4()), creds.client_secret) is None
    assert await authenticate_client(db_session, "not-a-uuid", creds.client_secret) is None
    assert await authenticate_client(db_session, "", "") is None


async def test_identity_without_a_secret_never_authenticates(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    row = await db_session.get(ServiceIdentity, uuid.UUID(creds.client_id))
    assert row is not None
    row.secret_hash = None
    await db_session.flush()
    assert await authenticate_client(db_session, creds.client_id, creds.client_secret) is None
    assert await authenticate_client(db_session, creds.client_id, "") is None


async def test_disabled_identity_no_longer_authenticates_and_loses_its_refresh_tokens(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    identity_id = uuid.UUID(creds.client_id)
    row = await db_session.get(ServiceIdentity, identity_id)
    assert row is not None
    refresh = await issue_refresh_token(db_session, service_identity_id=identity_id, tenant_id=row.tenant_id, now=NOW)

    assert await disable_service_identity(db_session, tenant_id=row.tenant_id, identity_id=identity_id, now=NOW)
    assert await authenticate_client(db_session, creds.client_id, creds.client_secret) is None
    token_row = await db_session.scalar(select(RefreshToken).where(RefreshToken.id == refresh.id))
    assert token_row is not None and token_row.revoked_at == NOW
    # Already disabled: nothing to do.
    assert not await disable_service_identity(
        db_session, tenant_id=row.tenant_id, identity_id=identity_id, now=NOW + timedelta(minutes=1)
    )
    # A disabled identity cannot be given a fresh secret either.
    with pytest.raises(IdentityNotFound):
        await rotate_service_secret(db_session, tenant_id=row.tenant_id, identity_id=identity_id)


async def test_disable_is_scoped_to_the_tenant(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    other_tenant = (await _identity(db_session)).client_id
    other_row = await db_session.get(ServiceIdentity, uuid.UUID(other_tenant))
    assert other_row is not None
    assert not await disable_service_identity(
        db_session, tenant_id=other_row.tenant_id, identity_id=uuid.UUID(creds.client_id), now=NOW
    )
    assert await authenticate_client(db_session, creds.client_id, creds.client_secret) is not None


async def test_rotation_invalidates_the_old_secret(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    row = await db_session.get(ServiceIdentity, uuid.UUID(creds.client_id))
    assert row is not None

    rotated = await rotate_service_secret(db_session, tenant_id=row.tenant_id, identity_id=row.id)
    assert rotated.client_id == creds.client_id
    assert rotated.client_secret != creds.client_secret
    assert await authenticate_client(db_session, creds.client_id, creds.client_secret) is None
    assert await authenticate_client(db_session, rotated.client_id, rotated.client_secret) is not None


async def test_rotation_in_another_tenant_is_not_found(db_session: AsyncSession) -> None:
    creds = await _identity(db_session)
    with pytest.raises(IdentityNotFound):
        await rotate_service_secret(db_session, tenant_id=uuid.uuid4(), identity_id=uuid.UUID(creds.client_id))
    assert await authenticate_client(db_session, creds.client_id, creds.client_secret) is not None


@pytest.mark.parametrize("scope", ["users:manage", "api_keys:manage"])
async def test_human_only_scopes_are_refused(db_session: AsyncSession, scope: str) -> None:
    with pytest.raises(ValueError, match=f"scope '{scope}' is reserved for people"):
        await _identity(db_session, scopes=["agent:budget", scope])


@pytest.mark.parametrize("scope", ["agent:root", "campaigns:write", "admin", ""])
async def test_unknown_scopes_are_refused(db_session: AsyncSession, scope: str) -> None:
    with pytest.raises(ValueError, match=f"unknown scope '{scope}'"):
        await _identity(db_session, scopes=[scope])


async def test_an_identity_needs_a_scope_and_a_unique_name(db_session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        await create_service_identity(db_session, tenant_slug=_tenant(), name="n", scopes=[])
    with pytest.raises(ValueError, match="not one string"):
        await create_service_identity(db_session, tenant_slug=_tenant(), name="n", scopes="agent:budget")

    tenant = _tenant()
    await create_service_identity(db_session, tenant_slug=tenant, name="publisher", scopes=["agent:publisher"])
    with pytest.raises(IdentityExists, match="publisher"):
        await create_service_identity(db_session, tenant_slug=tenant, name="publisher", scopes=["agent:publisher"])
