"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations).

Argon2 is deliberately slow and memory-hard: right for low-entropy human passwords. High-entropy
machine secrets (refresh tokens, API keys) use a fast hash instead, see those modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import Tenant, User

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist (or has no password), so an unknown
    email costs the same argon2 work as a wrong password and timing does not reveal accounts.
    Computed on first use: importing this module does no hashing."""
    return _hasher.hash("agency-dummy-password-never-matches")


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    # The stored hash used older parameters: store hash_password(password) now, while we have it.
    needs_rehash: bool = False


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("password must not be empty")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> PasswordCheck:
    """Checks ``password`` against ``stored_hash``; a missing hash still spends the argon2 work."""
    if stored_hash is None:
        _burn_dummy_verify(password)
        return PasswordCheck(ok=False)
    try:
        _hasher.verify(stored_hash, password)
    except VerifyMismatchError:
        return PasswordCheck(ok=False)
    except (VerificationError, InvalidHashError):
        # A corrupt or foreign hash in the database never authenticates anyone.
        return PasswordCheck(ok=False)
    return PasswordCheck(ok=True, needs_rehash=_hasher.check_needs_rehash(stored_hash))


def _burn_dummy_verify(password: str) -> None:
    try:
        _hasher.verify(_dummy_hash(), password)
    except VerificationError:
        pass


async def authenticate_user(
    session: AsyncSession, tenant_slug: str, email: str, password: str, *, now: datetime
) -> User | None:
    """The enabled user of ``tenant_slug`` with this email and password, else None.

    One outcome for unknown tenant, unknown email, disabled account and wrong password, so the
    caller cannot leak which one it was. Upgrades the stored hash when its parameters are stale.
    """
    user = await session.scalar(
        select(User)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.slug == tenant_slug, User.email == email)
    )
    check = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not check.ok:
        return None
    if user.disabled_at is not None and user.disabled_at <= now:
        return None
    if check.needs_rehash:
        user.password_hash = hash_password(password)
        await session.flush()
    return user
