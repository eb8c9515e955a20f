"""Who is calling: the one dependency every protected route goes through.

A request carries an access token (``Authorization: Bearer <jwt>``) or an API key
(``Authorization: Bearer agk_live_...`` or ``X-API-Key``). The dependency verifies it, charges
the caller's tenant and identity rate-limit buckets, and leaves the :class:`Principal` on
``request.state`` for the audit trail. Routes declare their permission with :func:`requires`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agency.security.access_tokens import AccessTokenClaims, InvalidToken, verify_access_token
from agency.security.api_keys import API_KEY_PREFIX, ApiKeyRejected, verify_api_key
from agency.security.rate_limit import (
    Decision,
    PostgresRateLimiter,
    RateLimits,
    identity_key,
    rate_limit_headers,
    tenant_key,
)
from agency.security.rbac import Permission, PermissionDenied, Principal, require
from agency.security.signing_keys import SigningKeyStore, VerificationKeys
from agency.settings import Settings
from api.errors import Forbidden, RateLimited, Unauthenticated

# Subject prefixes inside access tokens: the kind of principal travels with its id.
USER_SUBJECT = "user:"
SERVICE_SUBJECT = "service:"
API_KEY_SUBJECT = "api_key:"

# How long a replica trusts its copy of the verification keys. A token signed by a key newer
# than the copy (just rotated elsewhere) triggers an early reload, at most once a second.
KEY_CACHE_TTL_S = 30.0
KEY_RELOAD_MIN_INTERVAL_S = 1.0

_bearer = HTTPBearer(auto_error=False, description="An access token from /v1/auth/token, or an API key")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (agk_live_...)")


def utcnow() -> datetime:
    return datetime.now(UTC)


class VerificationKeyCache:
    """The public keys that verify access tokens, reloaded from PostgreSQL when stale."""

    def __init__(self, store: SigningKeyStore, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._store = store
        self._sessions = sessions
        self._keys: VerificationKeys | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, *, force_reload: bool = False) -> VerificationKeys:
        if self._current(force_reload):
            return self._keys
        async with self._lock:
            if not self._current(force_reload):  # another request may have just reloaded
                async with self._sessions() as session:
                    self._keys = await self._store.verification_keys(session, now=utcnow())
                self._loaded_at = time.monotonic()
            return self._keys

    def _current(self, force_reload: bool) -> bool:
        if self._keys is None:
            return False
        age = time.monotonic() - self._loaded_at
        return age < (KEY_RELOAD_MIN_INTERVAL_S if force_reload else KEY_CACHE_TTL_S)


class Authenticator:
    """Owned by the app's lifespan: verifies credentials and applies per-caller rate limits."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], limiter: PostgresRateLimiter
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.limiter = limiter
        self.limits = RateLimits.from_settings(settings)
        self.signing_keys = SigningKeyStore(settings)
        self.verification_keys = VerificationKeyCache(self.signing_keys, sessions)

    async def principal_for(self, credential: str) -> Principal:
        if credential.startswith(API_KEY_PREFIX):
            return await self._api_key_principal(credential)
        return await self._token_principal(credential)

    async def _token_principal(self, token: str) -> Principal:
        now = utcnow()
        try:
            claims = verify_access_token(token, await self.verification_keys.get(), now=now, settings=self.settings)
        except InvalidToken as error:
            if error.reason != "unknown_kid":
                raise Unauthenticated("access token rejected", reason=error.reason) from error
            # Maybe a key rotated in by another replica since our last load.
            try:
                claims = verify_access_token(
                    token, await self.verification_keys.get(force_reload=True), now=now, settings=self.settings
                )
            except InvalidToken as retry_error:
                raise Unauthenticated("access token rejected", reason=retry_error.reason) from retry_error
        return principal_from_claims(claims)

    async def _api_key_principal(self, presented: str) -> Principal:
        async with self.sessions() as session, session.begin():
            try:
                key = await verify_api_key(session, presented, now=utcnow())
            except ApiKeyRejected as error:
                raise Unauthenticated("API key rejected", reason=f"api_key_{error.reason}") from error
        return Principal(
            subject=f"{API_KEY_SUBJECT}{key.id}", tenant_id=str(key.tenant_id), kind="api_key", scopes=key.scopes
        )

    async def charge(self, principal: Principal) -> Decision:
        """Take one token from the tenant's and the caller's buckets; 429 if either is empty."""
        decisions = await self.limiter.take_each(
            [(tenant_key(principal.tenant_id), self.limits.tenant), (identity_key(principal.subject), self.limits.identity)]
        )
        refused = decisions[-1]
        if not refused.allowed:
            raise rate_limited_error(refused, "tenant" if len(decisions) == 1 else "identity")
        # Report the tighter of the two, as a client should pace itself by it.
        return min(decisions, key=lambda d: d.remaining)


def rate_limited_error(decision: Decision, scope: str) -> RateLimited:
    return RateLimited(
        f"{scope} rate limit exceeded; retry after {decision.retry_after_s}s",
        retry_after_s=decision.retry_after_s,
        headers=rate_limit_headers(decision),
    )


def principal_from_claims(claims: AccessTokenClaims) -> Principal:
    if claims.subject.startswith(USER_SUBJECT):
        kind = "user"
    elif claims.subject.startswith(SERVICE_SUBJECT):
        kind = "service"
    else:
        raise Unauthenticated("access token rejected", reason="unknown_subject")
    return Principal(
        subject=claims.subject, tenant_id=claims.tenant, kind=kind, roles=claims.roles, scopes=claims.scopes
    )


def _credential(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str:
    if bearer is not None and api_key is not None:
        raise Unauthenticated("send one credential, not both", reason="ambiguous_credentials")
    if bearer is not None:
        return bearer.credentials
    if api_key is not None:
        return api_key
    raise Unauthenticated("this route needs an access token or an API key", reason="missing_credentials")


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator  # not api.deps: it imports this module
    principal = await authenticator.principal_for(_credential(bearer, api_key))
    request.state.principal = principal  # before charging: a refused call is still audited
    request.state.rate_limit = await authenticator.charge(principal)
    return principal


def requires(permission: Permission) -> Any:
    """``Depends`` that admits a caller holding ``permission`` and returns its Principal."""

    async def permitted(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        try:
            require(principal, permission)
        except PermissionDenied as error:
            raise Forbidden(
                f"this credential may not {permission.value}", details={"permission": permission.value}
            ) from error
        return principal

    permitted.required_permission = permission  # type: ignore[attr-defined]  # read by route_permissions()
    return Depends(permitted)


def route_permissions(routes: list[Any]) -> dict[str, Permission]:
    """``"METHOD /path" -> permission`` for every route guarded by :func:`requires` (the docs table)."""
    table: dict[str, Permission] = {}
    for route in routes:
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        for permission in _permissions_in(dependant):
            for method in sorted(route.methods):
                table[f"{method} {route.path}"] = permission
    return table


def _permissions_in(dependant: Any) -> list[Permission]:
    found: list[Permission] = []
    for dep in dependant.dependencies:
        call: Callable | None = dep.call
        permission = getattr(call, "required_permission", None)
        if permission is not None:
            found.append(permission)
        found.extend(_permissions_in(dep))
    return found


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
