"""Creating principals: human users (argon2 passwords) and service identities (client secrets).

Service identities authenticate with the OAuth2 client-credentials grant: ``client_id`` is the
identity's UUID, ``client_secret`` 256 random bits shown once and stored only as SHA-256 (a fast
hash suffices for a high-entropy secret, unlike a password). Scopes are checked when an
identity is created, so a typo or a human-only permission is refused up front rather than
silently granting nothing.

Functions flush; the caller owns the transaction and commits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import User
from agency.db.models_identity import RefreshToken, ServiceIdentity
from agency.db.repository import CampaignRepository
from agency.security.passwords import hash_password
from agency.security.rbac import AGENT_SCOPES, HUMAN_ONLY, Permission, Role, scope_permissions

PASSWORD_MIN_LENGTH = 12
# argon2 hashes any length, but an unbounded input is a cheap way to make the server work.
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 320  # RFC 5321: 64 local part + @ + 255 domain
SERVICE_NAME_MAX_LENGTH = 200
# The token endpoint accepts tenant slugs of at most 64 characters; slugs also appear in
# workflow ids ("<slug>/<campaign>"), so no slashes or spaces.
_TENANT_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

# Deliberately loose: one @, no whitespace, a dot in the domain. Deliverability is not our job.
_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")

# Compared against when the client id is unknown, so a miss costs the same hashing and
# comparison as a wrong secret.
_DUMMY_SECRET_HASH = hashlib.sha256(b"agency-no-such-client").hexdigest()


class IdentityExists(Exception):
    """A user with this email (or a service identity with this name) already exists in the tenant."""


class IdentityNotFound(LookupError):
    """No enabled service identity with this id in this tenant."""


@dataclass(frozen=True)
class IssuedClientCredentials:
    client_id: str
    client_secret: str = field(repr=False)  # shown to the client once; never log or store it


def hash_client_secret(secret: str) -> str:
    # surrogatepass: any str a client can send hashes instead of raising.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def normalize_email(email: str) -> str:
    normalized = email.strip().lower()
    if len(normalized) > EMAIL_MAX_LENGTH or not _EMAIL_SHAPE.fullmatch(normalized):
        raise ValueError(f"not an email address: {email!r}")
    return normalized


def check_tenant_slug(slug: str) -> None:
    if not _TENANT_SLUG.fullmatch(slug):
        raise ValueError(
            f"not a tenant slug: {slug!r} (1-64 lower-case letters, digits, '-' or '_',"
            " starting with a letter or digit)"
        )


def check_password_policy(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"password too short: it needs at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"password too long: at most {PASSWORD_MAX_LENGTH} characters")


def check_service_scopes(scopes: Sequence[str]) -> list[str]:
    """The scopes, de-duplicated in order; ValueError naming the first unknown or human-only one."""
    if isinstance(scopes, str):  # a bare string would be read character by character
        raise ValueError("scopes must be a list of scope names, not one string")
    checked: list[str] = []
    for scope in scopes:
        if scope not in AGENT_SCOPES and scope not in Permission._value2member_map_:
            raise ValueError(f"unknown scope {scope!r}")
        if scope_permissions([scope]) & HUMAN_ONLY:
            raise ValueError(f"scope {scope!r} is reserved for people and cannot be given to a service identity")
        if scope not in checked:
            checked.append(scope)
    if not checked:
        raise ValueError("a service identity needs at least one scope")
    return checked


def _violates(error: IntegrityError, constraint: str) -> bool:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint or constraint in str(error.orig)


async def _add_unique(session: AsyncSession, row: object, constraint: str, taken: str) -> None:
    """Insert ``row``; :class:`IdentityExists` (message ``taken``) if it breaks ``constraint``.

    Inside a savepoint, so a duplicate leaves the caller's transaction usable.
    """
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError as error:
        if _violates(error, constraint):
            raise IdentityExists(taken) from None
        raise


async def create_user(
    session: AsyncSession,
    *,
    tenant_slug: str,
    email: str,
    role: str,
    password: str | None,
    now: datetime | None = None,
) -> User:
    """A new user of ``tenant_slug`` (created if missing). ``password=None``: no password login.

    Raises ValueError for an unknown role, a malformed email or a password outside the policy,
    :class:`IdentityExists` if the email is taken in the tenant.
    """
    if role not in Role._value2member_map_:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(r.value for r in Role)}")
    check_tenant_slug(tenant_slug)
    normalized_email = normalize_email(email)
    if password is not None:
        check_password_policy(password)
    # Hash before touching the database: argon2 is slow and must not extend the transaction.
    password_hash = hash_password(password) if password is not None else None

    tenant = await CampaignRepository(session).ensure_tenant(tenant_slug)
    user = User(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        email=normalized_email,
        role=Role(role).value,
        password_hash=password_hash,
    )
    if now is not None:
        user.created_at = now
    await _add_unique(
        session, user, "uq_users_tenant_id_email",
        f"a user with email {normalized_email} already exists in tenant {tenant_slug!r}",
    )
    return user


async def create_service_identity(
    session: AsyncSession, *, tenant_slug: str, name: str, scopes: Sequence[str]
) -> IssuedClientCredentials:
    """A new service identity of ``tenant_slug`` (created if missing) and its first secret.

    The secret is in the returned value only; the database keeps its SHA-256.
    """
    check_tenant_slug(tenant_slug)
    checked_scopes = check_service_scopes(scopes)
    name = name.strip()
    if not name or len(name) > SERVICE_NAME_MAX_LENGTH:
        raise ValueError(f"a service identity needs a name of 1 to {SERVICE_NAME_MAX_LENGTH} characters")

    tenant = await CampaignRepository(session).ensure_tenant(tenant_slug)
    secret = secrets.token_urlsafe(32)
    identity = ServiceIdentity(
        id=uuid.uuid4(), tenant_id=tenant.id, name=name, scopes=checked_scopes, secret_hash=hash_client_secret(secret)
    )
    await _add_unique(
        session, identity, "uq_service_identities_tenant_id_name",
        f"a service identity named {name!r} already exists in tenant {tenant_slug!r}",
    )
    return IssuedClientCredentials(client_id=str(identity.id), client_secret=secret)


async def rotate_service_secret(
    session: AsyncSession, *, tenant_id: uuid.UUID, identity_id: uuid.UUID
) -> IssuedClientCredentials:
    """Replaces the secret of an enabled identity; the old one stops working at once.

    Raises :class:`IdentityNotFound` if the identity is unknown, of another tenant or disabled.
    """
    secret = secrets.token_urlsafe(32)
    updated = await session.scalar(
        update(ServiceIdentity)
        .where(
            ServiceIdentity.id == identity_id,
            ServiceIdentity.tenant_id == tenant_id,
            ServiceIdentity.disabled_at.is_(None),
        )
        .values(secret_hash=hash_client_secret(secret))
        .returning(ServiceIdentity.id)
        .execution_options(synchronize_session="fetch")
    )
    if updated is None:
        raise IdentityNotFound(f"no enabled service identity {identity_id} in this tenant")
    return IssuedClientCredentials(client_id=str(updated), client_secret=secret)


async def disable_service_identity(
    session: AsyncSession, *, tenant_id: uuid.UUID, identity_id: uuid.UUID, now: datetime
) -> bool:
    """Disables the identity and ends its refresh-token families; False if unknown or already disabled.

    Access tokens already issued stay valid until they expire (minutes); nothing new is issued.
    """
    disabled = await session.scalar(
        update(ServiceIdentity)
        .where(
            ServiceIdentity.id == identity_id,
            ServiceIdentity.tenant_id == tenant_id,
            ServiceIdentity.disabled_at.is_(None),
        )
        .values(disabled_at=now)
        .returning(ServiceIdentity.id)
        .execution_options(synchronize_session="fetch")
    )
    if disabled is None:
        return False
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.service_identity_id == identity_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="service_identity_disabled")
        .execution_options(synchronize_session=False)
    )
    return True


async def authenticate_client(
    session: AsyncSession, client_id: str, client_secret: str, *, now: datetime | None = None
) -> ServiceIdentity | None:
    """The enabled service identity with this id and secret, else None (client-credentials grant).

    One outcome for malformed id, unknown id, disabled identity, no secret issued and wrong
    secret, and an unknown id does the same hashing and comparison as a known one, so neither
    the answer nor its timing tells a caller which identities exist.
    """
    now = now or datetime.now(timezone.utc)
    try:
        identity_id = uuid.UUID(client_id)
    except (ValueError, TypeError, AttributeError):
        identity_id = None
    identity = (
        await session.scalar(select(ServiceIdentity).where(ServiceIdentity.id == identity_id))
        if identity_id is not None
        else None
    )
    stored_hash = identity.secret_hash if identity is not None and identity.secret_hash else _DUMMY_SECRET_HASH
    presented = client_secret if isinstance(client_secret, str) else ""
    secret_matches = hmac.compare_digest(stored_hash, hash_client_secret(presented))
    if identity is None or identity.secret_hash is None or not secret_matches:
        return None
    if identity.disabled_at is not None and identity.disabled_at <= now:
        return None
    return identity
