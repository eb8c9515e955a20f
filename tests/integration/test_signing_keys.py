"""Signing-key store: rotation keeps earlier tokens valid for the grace period, JWKS is public-only,
private keys are encrypted at rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models_identity import SigningKey
from agency.security.access_tokens import InvalidToken, issue_access_token, verify_access_token
from agency.security.signing_keys import KeyEncryptor, SigningKeyStore
from agency.settings import Settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=2)
SETTINGS = Settings(
    secret_key="test-secret-key-for-signing-keys",  # type: ignore[arg-type]
    signing_key_verify_grace_s=int(GRACE.total_seconds()),
    access_token_ttl_s=900,
)
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.fixture(autouse=True)
async def no_other_keys(db_session: AsyncSession) -> None:
    """Start from an empty key table: API tests commit their own keys to the shared database.
    The delete is rolled back with the rest of the test."""
    await db_session.execute(delete(SigningKey))


async def _issue(store: SigningKeyStore, session: AsyncSession, now: datetime) -> str:
    signer = await store.signing_key(session, now=now)
    return issue_access_token(signer, subject="u", tenant="t", roles=["editor"], now=now, settings=SETTINGS).token


async def _verify(store: SigningKeyStore, session: AsyncSession, token: str, now: datetime) -> str:
    keys = await store.verification_keys(session, now=now)
    return verify_access_token(token, keys, now=now, settings=SETTINGS).kid


async def test_ensure_active_key_creates_one_key_and_then_reuses_it(db_session: AsyncSession) -> None:
    store = SigningKeyStore(SETTINGS)
    first = await store.ensure_active_key(db_session, now=NOW)
    second = await store.ensure_active_key(db_session, now=NOW + timedelta(minutes=1))
    assert first.kid == second.kid
    assert first.algorithm == "ES256" and first.retired_at is None
    assert len((await store.jwks(db_session, now=NOW))["keys"]) == 1


async def test_jwks_holds_public_keys_only(db_session: AsyncSession) -> None:
    store = SigningKeyStore(SETTINGS)
    await store.ensure_active_key(db_session, now=NOW)
    await store.rotate(db_session, now=NOW + timedelta(minutes=1))
    jwks = await store.jwks(db_session, now=NOW + timedelta(minutes=2))
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & jwk.keys()
        assert jwk["kty"] == "EC" and jwk["alg"] == "ES256" and jwk["use"] == "sig" and jwk["kid"]


async def test_private_key_is_encrypted_at_rest(db_session: AsyncSession) -> None:
    store = SigningKeyStore(SETTINGS)
    row = await store.ensure_active_key(db_session, now=NOW)
    stored = (await db_session.execute(select(SigningKey.private_jwk).where(SigningKey.kid == row.kid))).scalar_one()
    assert set(stored) == {"enc", "iv", "ct"}
    assert "d" not in stored and row.public_jwk["x"] not in str(stored)

    # Another secret_key cannot open it; the kid is bound as authenticated data.
    with pytest.raises(ValueError, match="cannot decrypt"):
        KeyEncryptor("some-other-secret").decrypt(row.kid, stored)
    with pytest.raises(ValueError, match="cannot decrypt"):
        KeyEncryptor(SETTINGS.secret_key.get_secret_value()).decrypt("another-kid", stored)
    assert KeyEncryptor(SETTINGS.secret_key.get_secret_value()).decrypt(row.kid, stored)["d"]


async def test_rotation_logs_nobody_out_until_the_grace_period_ends(db_session: AsyncSession) -> None:
    store = SigningKeyStore(SETTINGS)
    old_token = await _issue(store, db_session, NOW)
    old_kid = await _verify(store, db_session, old_token, NOW)

    rotated_at = NOW + timedelta(minutes=5)
    new_row = await store.rotate(db_session, now=rotated_at)
    new_token = await _issue(store, db_session, rotated_at)

    # New tokens use the new key; tokens from before the rotation still verify.
    assert new_row.kid != old_kid
    assert await _verify(store, db_session, new_token, rotated_at) == new_row.kid
    assert await _verify(store, db_session, old_token, rotated_at + timedelta(minutes=1)) == old_kid

    retired = await db_session.get(SigningKey, old_kid)
    assert retired is not None
    assert retired.retired_at == rotated_at and retired.verify_until == rotated_at + GRACE

    # Once verify_until passes, the old key is gone from the key set and from the JWKS.
    after_grace = rotated_at + GRACE
    keys = await store.verification_keys(db_session, now=after_grace)
    with pytest.raises(InvalidToken) as caught:
        # leeway far beyond the token's own expiry isolates the key check
        verify_access_token(old_token, keys, now=after_grace, settings=SETTINGS, leeway_s=10**6)
    assert caught.value.reason == "unknown_kid"
    assert [k["kid"] for k in (await store.jwks(db_session, now=after_grace))["keys"]] == [new_row.kid]


async def test_rotation_retires_the_previous_signer(db_session: AsyncSession) -> None:
    store = SigningKeyStore(SETTINGS)
    first = await store.ensure_active_key(db_session, now=NOW)
    second = await store.rotate(db_session, now=NOW + timedelta(minutes=1))
    third = await store.rotate(db_session, now=NOW + timedelta(minutes=2))
    signer = await store.signing_key(db_session, now=NOW + timedelta(minutes=3))
    assert signer.kid == third.kid
    active = (await db_session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None)))).all()
    assert [row.kid for row in active] == [third.kid]
    assert {first.kid, second.kid, third.kid} == {
        k["kid"] for k in (await store.jwks(db_session, now=NOW + timedelta(minutes=3)))["keys"]
    }


async def test_delete_expired_removes_only_keys_past_verify_until(db_session: AsyncSession) -> None:
    store = SigningKeyStore(SETTINGS)
    old = await store.ensure_active_key(db_session, now=NOW)
    new = await store.rotate(db_session, now=NOW)
    assert await store.delete_expired(db_session, now=NOW + GRACE - timedelta(seconds=1)) == 0
    assert await store.delete_expired(db_session, now=NOW + GRACE) == 1
    assert await db_session.get(SigningKey, old.kid) is None
    assert await db_session.get(SigningKey, new.kid) is not None
