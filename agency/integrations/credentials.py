"""Per-tenant provider credentials: validated, encrypted at rest, rotated without downtime.

* Encryption: Fernet (AES-128-CBC + HMAC-SHA256) through a MultiFernet over
  ``settings.credentials_keys``: the first key encrypts, every key decrypts, so the key itself
  rotates by putting a new key first and running :func:`reencrypt_credentials`
  (``python -m agency.integrations.credentials reencrypt``). With no keys in local/test mode one
  key is derived from ``settings.secret_key`` by HKDF; production refuses to start without keys.
* Versions: storing a credential adds version N+1 as ``active``; the previous active one turns
  ``retiring`` until ``retire_after`` (the overlap) and keeps working as a fallback meanwhile.
  Then, or on an explicit retire, it is ``retired`` and its ciphertext is erased.
* :class:`TenantCredentialSource` is what adapters authenticate with: it caches the newest usable
  version for a short TTL and, after a 401, reloads (a rotation reaches running workers without
  a restart) or falls back to a still-retiring version when the newest one is refused.

Secrets never leave this module except as request headers: nothing here logs them, and the
metadata it returns (:class:`CredentialMeta`) has no secret fields.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator
from sqlalchemy import func, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agency.db.models_integrations import PROVIDERS, IntegrationCredential
from agency.integrations.errors import ProviderAuthFailed
from agency.settings import Settings

DEFAULT_OVERLAP = timedelta(hours=24)
_HKDF_SALT = b"agency/integration-credentials"
_HKDF_INFO = b"fernet-key/v1"


# ---- what each provider's credential holds --------------------------------------------------
def _customer_id(value: str) -> str:
    digits = value.replace("-", "")
    if not (digits.isdigit() and len(digits) == 10):
        raise ValueError("a Google Ads customer id is 10 digits (dashes allowed)")
    return digits


Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=4096, pattern=r"^\S+$")]
NumericId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{1,20}$")]
CustomerId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=12), AfterValidator(_customer_id)]


class _Secret(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ga4Secret(_Secret):
    access_token: Token
    property_id: NumericId


class GoogleAdsSecret(_Secret):
    access_token: Token
    developer_token: Token
    customer_id: CustomerId
    login_customer_id: CustomerId | None = None


class HubspotSecret(_Secret):
    access_token: Token  # private app token
    client_secret: Token | None = None  # verifies webhook v3 signatures
    portal_id: NumericId | None = None


class LinkedinSecret(_Secret):
    access_token: Token
    organization_id: NumericId  # posts are authored as urn:li:organization:{id}


class XSecret(_Secret):
    access_token: Token  # OAuth 2.0 user context
    user_id: NumericId | None = None


class ResendSecret(_Secret):
    api_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=4096, pattern=r"^re_\S+$")]


def _application_password(value: str) -> str:
    # WordPress shows application passwords in groups of four ("abcd efgh ...") and accepts them
    # with or without the spaces; it generates 24 characters from [A-Za-z0-9].
    compact = "".join(value.split())
    if not (len(compact) == 24 and compact.isascii() and compact.isalnum()):
        raise ValueError("a WordPress application password is 24 letters and digits (spaces allowed)")
    return compact


def _https_url(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme != "https" or not parsed.hostname or parsed.username or parsed.password:
        raise ValueError("must be an https:// URL without credentials in it")
    return value.rstrip("/")


HttpsUrl = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048), AfterValidator(_https_url)]
WpUsername = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
ApplicationPassword = Annotated[str, StringConstraints(max_length=64), AfterValidator(_application_password)]


class WordpressSecret(_Secret):
    """A user's application password (core WordPress, Basic auth) or a bearer token (an OAuth or
    JWT plugin): exactly one of the two. ``site_url`` is the site the tenant publishes to; without
    it the configured provider URL is used (``AGENCY_PROVIDER_BASE_URLS``, the sandbox face)."""

    username: WpUsername | None = None
    application_password: ApplicationPassword | None = None
    access_token: Token | None = None
    site_url: HttpsUrl | None = None

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> WordpressSecret:
        password = self.username is not None and self.application_password is not None
        if (self.username is None) != (self.application_password is None):
            raise ValueError("username and application_password go together")
        if password == (self.access_token is not None):
            raise ValueError("give either username + application_password or access_token")
        return self


class InstagramSecret(_Secret):
    access_token: Token  # a user/page token with instagram_content_publish
    ig_user_id: NumericId  # the Instagram professional account captions are published as
    # Instagram publishes images with captions; campaign items are text, so their captions go
    # out with the account's campaign image (a public JPEG, which Instagram fetches itself).
    image_url: HttpsUrl | None = None


SECRET_MODELS: dict[str, type[_Secret]] = {
    "ga4": Ga4Secret,
    "google-ads": GoogleAdsSecret,
    "hubspot": HubspotSecret,
    "linkedin": LinkedinSecret,
    "x": XSecret,
    "resend": ResendSecret,
    "wordpress": WordpressSecret,
    "instagram": InstagramSecret,
}
assert set(SECRET_MODELS) == set(PROVIDERS)


def auth_headers(provider: str, secret: dict[str, Any]) -> dict[str, str]:
    """The request headers a provider's credential turns into."""
    if provider == "resend":
        return {"Authorization": f"Bearer {secret['api_key']}"}
    if provider == "wordpress" and secret.get("application_password"):
        pair = f"{secret['username']}:{secret['application_password']}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    headers = {"Authorization": f"Bearer {secret['access_token']}"}
    if provider == "google-ads":
        headers["developer-token"] = secret["developer_token"]
        if secret.get("login_customer_id"):
            headers["login-customer-id"] = secret["login_customer_id"]
    return headers


# ---- encryption -------------------------------------------------------------------------------
def key_fingerprint(key: bytes) -> str:
    """A stable, non-secret name for a Fernet key (which key encrypted a row)."""
    return hashlib.sha256(b"agency-credentials-key:" + key).hexdigest()[:16]


def derive_local_key(secret_key: str) -> bytes:
    """A Fernet key from the app's secret key (local/test mode only)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


class CredentialCipher:
    """MultiFernet over the configured keys: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ValueError("at least one credentials key is required")
        encoded = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
        try:
            fernets = [Fernet(k) for k in encoded]
        except ValueError as err:
            raise ValueError("each credentials key must be url-safe base64 of 32 bytes (Fernet.generate_key())") from err
        self._multi = MultiFernet(fernets)
        self.primary_key_id = key_fingerprint(encoded[0])
        self.key_ids = tuple(key_fingerprint(k) for k in encoded)

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialCipher:
        keys = [k.get_secret_value() for k in settings.credentials_keys]
        if keys:
            return cls(keys)
        if settings.environment == "production":
            raise RuntimeError("AGENCY_CREDENTIALS_KEYS must be set in production")
        return cls([derive_local_key(settings.secret_key.get_secret_value())])

    def encrypt(self, secret: dict[str, Any]) -> str:
        return self._multi.encrypt(json.dumps(secret, sort_keys=True).encode()).decode()

    def decrypt(self, ciphertext: str) -> dict[str, Any]:
        try:
            return json.loads(self._multi.decrypt(ciphertext.encode()))
        except InvalidToken as err:
            # No key of ours made it (a key was dropped before re-encrypting): say so, not the token.
            raise CredentialUndecryptable("no configured credentials key decrypts this credential") from err

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted under the primary key."""
        try:
            return self._multi.rotate(ciphertext.encode()).decode()
        except InvalidToken as err:
            raise CredentialUndecryptable("no configured credentials key decrypts this credential") from err


class CredentialUndecryptable(Exception):
    pass


class CredentialInUse(Exception):
    """The active version cannot be retired: store its successor first."""


# ---- the store --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CredentialMeta:
    """What may be shown about a stored credential: never the secret."""

    provider: str
    version: int
    status: str
    key_id: str
    created_by: str
    created_at: datetime
    retire_after: datetime | None
    retired_at: datetime | None

    @classmethod
    def of(cls, row: IntegrationCredential) -> CredentialMeta:
        return cls(row.provider, row.version, row.status, row.key_id, row.created_by, row.created_at,
                   row.retire_after, row.retired_at)


@dataclass(frozen=True)
class UsableCredential:
    version: int
    secret: dict[str, Any] = field(repr=False)


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _lock(session: AsyncSession, tenant_id: uuid.UUID, provider: str) -> None:
    # Serialises writers of one tenant's provider (two PUTs must not both take version N+1).
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"integration_credentials:{tenant_id}:{provider}"},
    )


def _retire(row: IntegrationCredential, now: datetime) -> None:
    row.status = "retired"
    row.retired_at = now
    row.ciphertext = None  # a retired secret is never needed again; don't keep it


async def retire_expired(session: AsyncSession, tenant_id: uuid.UUID | None = None, *, now: datetime | None = None) -> int:
    """Retire every retiring version whose overlap has ended; how many."""
    now = now or _now()
    query = update(IntegrationCredential).where(
        IntegrationCredential.status == "retiring", IntegrationCredential.retire_after <= now
    )
    if tenant_id is not None:
        query = query.where(IntegrationCredential.tenant_id == tenant_id)
    result = await session.execute(
        query.values(status="retired", retired_at=now, ciphertext=None).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


async def store_credential(
    session: AsyncSession,
    cipher: CredentialCipher,
    tenant_id: uuid.UUID,
    provider: str,
    secret: dict[str, Any],
    *,
    created_by: str,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
) -> tuple[CredentialMeta, CredentialMeta | None]:
    """Add the next version as active; the previous active one retires after ``overlap``.

    Returns (new version, previous active version or None). Runs in the caller's transaction.
    """
    if provider not in SECRET_MODELS:
        raise ValueError(f"unknown provider {provider!r}")
    valid = SECRET_MODELS[provider].model_validate(secret).model_dump(exclude_none=True)
    now = now or _now()
    await _lock(session, tenant_id, provider)
    await retire_expired(session, tenant_id, now=now)
    latest = await session.scalar(
        select(func.max(IntegrationCredential.version)).where(
            IntegrationCredential.tenant_id == tenant_id, IntegrationCredential.provider == provider
        )
    )
    previous = await session.scalar(
        select(IntegrationCredential).where(
            IntegrationCredential.tenant_id == tenant_id,
            IntegrationCredential.provider == provider,
            IntegrationCredential.status == "active",
        )
    )
    if previous is not None:
        if overlap > timedelta(0):
            previous.status = "retiring"
            previous.retire_after = now + overlap
        else:
            _retire(previous, now)
        await session.flush()  # the partial unique index admits the new active row only after this
    row = IntegrationCredential(
        tenant_id=tenant_id, provider=provider, version=(latest or 0) + 1, ciphertext=cipher.encrypt(valid),
        key_id=cipher.primary_key_id, status="active", created_by=created_by, created_at=now,
    )
    session.add(row)
    await session.flush()
    return CredentialMeta.of(row), CredentialMeta.of(previous) if previous is not None else None


async def retire_credential(
    session: AsyncSession, tenant_id: uuid.UUID, provider: str, version: int, *, now: datetime | None = None
) -> CredentialMeta:
    """Retire a retiring version now (idempotent for a retired one). LookupError, CredentialInUse."""
    now = now or _now()
    await _lock(session, tenant_id, provider)
    row = await session.scalar(
        select(IntegrationCredential).where(
            IntegrationCredential.tenant_id == tenant_id,
            IntegrationCredential.provider == provider,
            IntegrationCredential.version == version,
        )
    )
    if row is None:
        raise LookupError(f"no {provider} credential version {version}")
    if row.status == "active":
        raise CredentialInUse(f"{provider} version {version} is the active credential; store its successor first")
    if row.status == "retiring":
        _retire(row, now)
        await session.flush()
    return CredentialMeta.of(row)


async def list_credentials(session: AsyncSession, tenant_id: uuid.UUID) -> list[CredentialMeta]:
    """Every version of every provider (metadata only), newest first per provider."""
    rows = await session.scalars(
        select(IntegrationCredential)
        .where(IntegrationCredential.tenant_id == tenant_id)
        .order_by(IntegrationCredential.provider, IntegrationCredential.version.desc())
    )
    now = _now()
    out = []
    for row in rows:
        meta = CredentialMeta.of(row)
        if row.status == "retiring" and row.retire_after is not None and row.retire_after <= now:
            # Past its overlap: retired in effect even before a writer sweeps it.
            meta = CredentialMeta(meta.provider, meta.version, "retired", meta.key_id, meta.created_by,
                                  meta.created_at, meta.retire_after, meta.retire_after)
        out.append(meta)
    return out


async def usable_credentials(
    session: AsyncSession, cipher: CredentialCipher, tenant_id: uuid.UUID, provider: str, *, now: datetime | None = None
) -> list[UsableCredential]:
    """Decrypted versions that may be used now: the active one, then retiring ones, newest first."""
    now = now or _now()
    rows = await session.scalars(
        select(IntegrationCredential)
        .where(
            IntegrationCredential.tenant_id == tenant_id,
            IntegrationCredential.provider == provider,
            IntegrationCredential.status.in_(("active", "retiring")),
        )
        .order_by(IntegrationCredential.version.desc())
    )
    out = []
    for row in rows:
        if row.status == "retiring" and (row.retire_after is None or row.retire_after <= now):
            continue
        if row.ciphertext is not None:
            out.append(UsableCredential(row.version, cipher.decrypt(row.ciphertext)))
    return out


async def reencrypt_credentials(
    sessions: async_sessionmaker[AsyncSession],
    cipher: CredentialCipher,
    *,
    tenant_id: uuid.UUID | None = None,
    batch_size: int = 200,
) -> int:
    """Re-encrypt every stored secret (of one tenant, if given) not yet under the primary key;
    how many were rewritten.

    Batches commit one by one (readers are never blocked for long) and skip rows another
    re-encryption holds, so it can run while the service is up and be re-run after a crash.
    """
    total = 0
    while True:
        async with sessions() as session, session.begin():
            rows = (await session.scalars(
                select(IntegrationCredential)
                .where(IntegrationCredential.ciphertext.is_not(None),
                       IntegrationCredential.key_id != cipher.primary_key_id,
                       true() if tenant_id is None else IntegrationCredential.tenant_id == tenant_id)
                .order_by(IntegrationCredential.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )).all()
            for row in rows:
                row.ciphertext = cipher.rotate(row.ciphertext)
                row.key_id = cipher.primary_key_id
            total += len(rows)
        if len(rows) < batch_size:
            return total


# ---- what adapters authenticate with ---------------------------------------------------------
class TenantCredentialSource:
    """A tenant's stored credential for one provider, as a :class:`CredentialSource`.

    ``headers()`` serves the newest usable version, reloaded every ``ttl_s``. ``refresh()`` (the
    HTTP client calls it after a 401/403) reloads at once and moves to the newest version other
    than the refused one: the new version after a rotation, or the still-retiring previous one
    when the new version is refused (a provider that has not activated it yet). The newest is
    tried again at the next TTL reload.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tenant_id: uuid.UUID | str,
        provider: str,
        *,
        cipher: CredentialCipher,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if provider not in SECRET_MODELS:
            raise ValueError(f"unknown provider {provider!r}")
        self._sessions = sessions
        self._tenant_id = uuid.UUID(str(tenant_id))
        self.provider = provider
        self._cipher = cipher
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._candidates: list[UsableCredential] = []
        self._current: UsableCredential | None = None
        self._loaded_at: float | None = None
        # The version this task's last request went out with (refresh() runs in the same task).
        self._served: contextvars.ContextVar[int | None] = contextvars.ContextVar(f"served-{id(self)}", default=None)

    def __repr__(self) -> str:  # never the secret
        return f"TenantCredentialSource({self._tenant_id}, {self.provider!r}, version={self.version})"

    @property
    def version(self) -> int | None:
        return self._current.version if self._current is not None else None

    async def _load(self) -> None:
        async with self._sessions() as session:
            self._candidates = await usable_credentials(session, self._cipher, self._tenant_id, self.provider)
        self._loaded_at = self._clock()

    async def _ensure(self) -> UsableCredential:
        async with self._lock:
            if self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl_s:
                await self._load()
                # Back to the newest each time: a refused new version is retried once per TTL.
                self._current = self._candidates[0] if self._candidates else None
            if self._current is None:
                raise ProviderAuthFailed(
                    self.provider, 401, "credential_missing",
                    f"no usable {self.provider} credential is stored for this tenant",
                )
            return self._current

    async def secret(self) -> dict[str, Any]:
        """The credential in use (for account ids it carries: customer id, property id...)."""
        return dict((await self._ensure()).secret)

    async def headers(self) -> dict[str, str]:
        current = await self._ensure()
        self._served.set(current.version)
        return auth_headers(self.provider, current.secret)

    async def refresh(self) -> bool:
        served = self._served.get()
        async with self._lock:
            if served is not None and self._current is not None and served != self._current.version:
                # Another caller already moved on from the version this request used: retry
                # with the current one rather than blaming it.
                return True
            refused = self._current
            await self._load()
            # The newest usable version other than the refused one: after a rotation that is the
            # new version; when the new version is the refused one, the still-retiring previous.
            for candidate in self._candidates:
                if refused is None or (candidate.version, candidate.secret) != (refused.version, refused.secret):
                    self._current = candidate
                    return True
            return False


# ---- command line: re-encrypt after a key rotation ---------------------------------------------
async def _reencrypt_main() -> int:
    from agency.db.session import create_engine, resolve_database_url, session_factory
    from agency.settings import get_settings

    settings = get_settings()
    engine = create_engine(resolve_database_url(settings))
    try:
        count = await reencrypt_credentials(session_factory(engine), CredentialCipher.from_settings(settings))
    finally:
        await engine.dispose()
    print(f"re-encrypted {count} credential(s) under key {CredentialCipher.from_settings(settings).primary_key_id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m agency.integrations.credentials",
        description="Tenant credential maintenance. 'reencrypt': after putting a new key first in "
        "AGENCY_CREDENTIALS_KEYS, rewrite every stored credential under it; then the old key can be removed.",
    )
    parser.add_argument("command", choices=["reencrypt"])
    parser.parse_args(argv)
    return asyncio.run(_reencrypt_main())


if __name__ == "__main__":
    raise SystemExit(main())
