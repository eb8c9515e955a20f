"""Token grants: password login (people), client credentials (machines), refresh, logout.

Errors are Authlib's RFC 6749 error types (``invalid_grant``, ``invalid_client``, ...), which
the endpoints render in the RFC's JSON shape. Every attempt, successful or not, is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError, InvalidScopeError
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from agency.db.models import User
from agency.db.models_identity import RefreshToken
from agency.security.access_tokens import IssuedAccessToken, issue_access_token
from agency.security.identities import authenticate_client
from agency.security.passwords import authenticate_user
from agency.security.rate_limit import login_account_key, login_ip_key
from agency.security.rbac import HUMAN_ONLY, scope_permissions
from agency.security.refresh_tokens import (
    RefreshTokenError,
    RefreshTokenReused,
    issue_refresh_token,
    revoke_family,
    revoke_family_by_id,
    rotate_refresh_token,
)
from api.audit_trail import record_call
from api.auth.principal import SERVICE_SUBJECT, USER_SUBJECT, Authenticator, rate_limited_error, utcnow


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str | None


class AuthService:
    def __init__(self, request: Request, session: AsyncSession, authenticator: Authenticator) -> None:
        self._request = request
        self._session = session
        self._auth = authenticator

    # ---- grants ----------------------------------------------------------------------
    async def password_grant(self, tenant: str, username: str, password: str) -> TokenGrant:
        await self._charge_login(tenant, username)
        now = utcnow()
        async with self._session.begin():
            user = await authenticate_user(self._session, tenant, username.strip().lower(), password, now=now)
            if user is None:
                await self._audit_login(outcome="denied", subject=f"{tenant}/{username}"[:300])
                failure = InvalidGrantError(description="wrong tenant, username or password")
            else:
                grant = await self._user_tokens(user, now=now)
                await self._audit_login(outcome="ok", subject=str(user.id), user=user)
                return grant
        raise failure

    async def client_credentials_grant(self, client_id: str, client_secret: str, scope: str | None) -> TokenGrant:
        await self._charge_login("client", client_id)
        now = utcnow()
        async with self._session.begin():
            identity = await authenticate_client(self._session, client_id, client_secret)
            if identity is None:
                failure: Exception = InvalidClientError(description="client authentication failed", status_code=401)
            else:
                granted = _narrowed_scopes(identity.scopes, scope)
                if isinstance(granted, Exception):
                    failure = granted
                else:
                    subject = f"{SERVICE_SUBJECT}{identity.id}"
                    token = await self._access_token(subject, identity.tenant_id, roles=(), scopes=granted, now=now)
                    await record_call(
                        self._request, self._session, action="auth.client_credentials", subject_type="service_identity",
                        subject_id=str(identity.id), actor=subject, tenant_id=identity.tenant_id,
                        detail={"scope": list(granted)},
                    )
                    # RFC 6749 §4.4.3: no refresh token for client credentials; ask again instead.
                    return TokenGrant(token.token, self._auth.settings.access_token_ttl_s, None, list_to_scope(granted))
            await record_call(
                self._request, self._session, action="auth.client_credentials", subject_type="service_identity",
                subject_id=client_id[:64], actor="anonymous", outcome="denied",
            )
        raise failure

    async def refresh(self, refresh_token: str) -> TokenGrant:
        now = utcnow()
        # rotate_refresh_token commits in every outcome (a detected reuse must stay revoked).
        try:
            successor = await rotate_refresh_token(self._session, refresh_token, now=now, settings=self._auth.settings)
        except RefreshTokenError as error:
            async with self._session.begin():
                await record_call(
                    self._request, self._session, action="auth.refresh", subject_type="refresh_token_family",
                    subject_id=str(error.family_id) if isinstance(error, RefreshTokenReused) else "unknown",
                    actor="anonymous", outcome="denied", detail={"reason": error.reason},
                )
            raise InvalidGrantError(description=f"refresh token rejected ({error.reason})") from error
        async with self._session.begin():
            user = await self._session.get(User, successor.user_id) if successor.user_id else None
            if user is None or (user.disabled_at is not None and user.disabled_at <= now):
                await revoke_family_by_id(self._session, successor.family_id, now=now, reason="account_disabled")
                failure = InvalidGrantError(description="refresh token rejected (account disabled)")
            else:
                access = await self._access_token(
                    f"{USER_SUBJECT}{user.id}", user.tenant_id, roles=(user.role,), now=now
                )
                await record_call(
                    self._request, self._session, action="auth.refresh", subject_type="refresh_token_family",
                    subject_id=str(successor.family_id), actor=f"{USER_SUBJECT}{user.id}", tenant_id=user.tenant_id,
                )
                return TokenGrant(access.token, self._auth.settings.access_token_ttl_s, successor.token, None)
        raise failure

    async def logout(self, refresh_token: str) -> None:
        now = utcnow()
        family_id = await revoke_family(self._session, refresh_token, now=now, reason="logout")
        if family_id is not None:
            async with self._session.begin():
                owner = (
                    await self._session.execute(
                        select(RefreshToken.user_id, RefreshToken.tenant_id)
                        .where(RefreshToken.family_id == family_id)
                        .limit(1)
                    )
                ).one()
                await record_call(
                    self._request, self._session, action="auth.logout", subject_type="refresh_token_family",
                    subject_id=str(family_id), actor=f"{USER_SUBJECT}{owner.user_id}", tenant_id=owner.tenant_id,
                )

    # ---- helpers ---------------------------------------------------------------------
    async def _access_token(
        self, subject: str, tenant_id: uuid.UUID, *, roles: Sequence[str], now: datetime, scopes: Sequence[str] = ()
    ) -> IssuedAccessToken:
        return issue_access_token(
            await self._auth.signing_keys.signing_key(self._session, now=now),
            subject=subject,
            tenant=str(tenant_id),
            roles=roles,
            scopes=scopes,
            now=now,
            settings=self._auth.settings,
        )

    async def _user_tokens(self, user: User, *, now: datetime) -> TokenGrant:
        access = await self._access_token(f"{USER_SUBJECT}{user.id}", user.tenant_id, roles=(user.role,), now=now)
        refresh = await issue_refresh_token(
            self._session, tenant_id=user.tenant_id, user_id=user.id, now=now, settings=self._auth.settings
        )
        return TokenGrant(access.token, self._auth.settings.access_token_ttl_s, refresh.token, None)

    async def _charge_login(self, tenant: str, account: str) -> None:
        """Brute-force protection: one bucket per client address and one per targeted account."""
        limiter, limit = self._auth.limiter, self._auth.limits.login
        address = self._request.client.host if self._request.client else "unknown"
        for key in (login_ip_key(address), login_account_key(f"{tenant}/{account}")):
            decision = await limiter.take(key, limit)
            if not decision.allowed:
                raise rate_limited_error(decision, "login")

    async def _audit_login(self, *, outcome: str, subject: str, user: User | None = None) -> None:
        await record_call(
            self._request, self._session, action="auth.login", subject_type="user", subject_id=subject,
            actor=f"{USER_SUBJECT}{user.id}" if user else "anonymous",
            tenant_id=user.tenant_id if user else None, outcome=outcome,
        )


def _narrowed_scopes(held: list[str], requested: str | None) -> tuple[str, ...] | Exception:
    """The identity's scopes, or the subset it asked for (RFC 6749 §3.3); never more."""
    if not requested:
        return tuple(held)
    wanted = scope_to_list(requested)
    unknown = [s for s in wanted if s not in held and not scope_permissions([s]) <= scope_permissions(held)]
    if unknown or any(scope_permissions([s]) & HUMAN_ONLY for s in wanted):
        return InvalidScopeError(description=f"scope not granted to this client: {' '.join(unknown) or requested}")
    return tuple(wanted)
