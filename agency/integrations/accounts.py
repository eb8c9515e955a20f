"""The provider adapters one tenant's campaigns use, built from its stored credentials.

Credentials come from ``integration_credentials`` (see :mod:`agency.integrations.credentials`).
In sandbox mode a provider the tenant has not connected falls back to the sandbox's own token and
placeholder account ids, so local mode and tests run without connecting anything; in live mode
the first call fails with :class:`~agency.integrations.errors.ProviderAuthFailed` ("connect the
provider first"), which activities turn into a non-retryable error.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agency.channels import ChannelClient
from agency.db.models import Tenant
from agency.integrations.ads import GoogleAdsClient
from agency.integrations.analytics import Ga4Analytics
from agency.integrations.credentials import CredentialCipher, TenantCredentialSource, auth_headers
from agency.integrations.errors import ProviderAuthFailed, ProviderRejected, not_connected
from agency.integrations.publishing import PublishingRouter, build_publishing_router
from agency.settings import Settings

# Placeholder accounts of the sandbox (its faces serve one advertiser / property / organization).
SANDBOX_ACCOUNTS: dict[str, dict[str, Any]] = {
    "google-ads": {"customer_id": "1234567890", "developer_token": "sandbox-developer-token"},
    "ga4": {"property_id": "123456789"},
    "linkedin": {"organization_id": "2414183"},
    "x": {},
    "resend": {},
    "hubspot": {},
    "wordpress": {},  # the face's URL is the site; the token is the bearer kind
    # Any numeric id is an account of the face; Instagram fetches the image itself, the face does not.
    "instagram": {"ig_user_id": "17841400000000001", "image_url": "https://sandbox.agency.example/campaign.jpg"},
}


# Providers campaigns publish through (every content format has one).
_PUBLISHING = ("wordpress", "x", "linkedin", "instagram", "resend")


# How long a tenant's adapter set is reused before it is rebuilt from the stored credentials.
REBUILD_AFTER_S = 60.0


async def _account(source: SandboxFallbackCredential) -> dict[str, Any] | None:
    """The provider's account (secret and ids), or None when the tenant has not connected it."""
    try:
        return await source.secret()
    except ProviderAuthFailed as err:
        if err.code != "credential_missing":
            raise
        return None


class SandboxFallbackCredential:
    """A tenant's stored credential, or (sandbox mode only) the sandbox token when it has none."""

    def __init__(self, stored: TenantCredentialSource, sandbox_token: str | None) -> None:
        self._stored = stored
        self._sandbox_token = sandbox_token
        self.provider = stored.provider

    async def secret(self) -> dict[str, Any]:
        try:
            return await self._stored.secret()
        except ProviderAuthFailed as err:
            if self._sandbox_token is None or err.code != "credential_missing":
                raise
            fallback = dict(SANDBOX_ACCOUNTS[self.provider])
            fallback["access_token" if self.provider != "resend" else "api_key"] = self._sandbox_token
            return fallback

    async def headers(self) -> dict[str, str]:
        return auth_headers(self.provider, await self.secret())

    async def refresh(self) -> bool:
        try:
            return await self._stored.refresh()
        except ProviderAuthFailed:
            return False


@dataclass
class TenantAdapters:
    """One tenant's adapters; a provider the tenant has not connected (live mode) is None, and
    using it fails with a non-retryable "connect it first" error."""

    publishing: PublishingRouter
    ads_client: GoogleAdsClient | None
    analytics_client: Ga4Analytics | None
    ga4_property: str

    @property
    def ads(self) -> GoogleAdsClient:
        if self.ads_client is None:
            raise not_connected("google-ads")
        return self.ads_client

    @property
    def analytics(self) -> Ga4Analytics:
        if self.analytics_client is None:
            raise not_connected("ga4")
        return self.analytics_client

    async def aclose(self) -> None:
        await self.publishing.aclose()
        for client in (self.ads_client, self.analytics_client):
            if client is not None:
                await client.aclose()


class TenantProviders:
    """Adapters per tenant (by slug), built on first use and kept for the process's lifetime."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], channel: ChannelClient | None = None
    ) -> None:
        # ``channel``: the fallback for formats no provider has (the legacy generic social_post);
        # every format campaigns produce now has its provider adapter.
        self._settings = settings
        self._sessions = sessions
        self._channel = channel
        self._cipher = CredentialCipher.from_settings(settings)
        self._sandbox_token = (
            settings.channel_token.get_secret_value() if settings.integrations_target == "sandbox" else None
        )
        self._adapters: dict[str, tuple[float, TenantAdapters]] = {}
        # Replaced adapter sets stay open a while: activities may still be using them.
        self._replaced: list[tuple[float, TenantAdapters]] = []
        self._lock = asyncio.Lock()

    async def for_tenant(self, tenant_slug: str) -> TenantAdapters:
        """The tenant's adapters, rebuilt every ``REBUILD_AFTER_S`` so a provider connected (or
        an account id changed) since is picked up without a restart."""
        async with self._lock:
            now = time.monotonic()
            built = self._adapters.get(tenant_slug)
            if built is not None and now - built[0] < REBUILD_AFTER_S:
                return built[1]
            adapters = await self._build(tenant_slug)
            self._adapters[tenant_slug] = (now, adapters)
            if built is not None:
                self._replaced.append((now, built[1]))
            await self._close_replaced(older_than=now - REBUILD_AFTER_S)
            return adapters

    async def _close_replaced(self, *, older_than: float) -> None:
        keep = []
        for replaced_at, adapters in self._replaced:
            if replaced_at < older_than:
                await adapters.aclose()
            else:
                keep.append((replaced_at, adapters))
        self._replaced = keep

    async def _build(self, tenant_slug: str) -> TenantAdapters:
        async with self._sessions() as session:
            tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == tenant_slug))
        if tenant_id is None:
            raise ProviderRejected("agency", 404, "tenant_not_found", f"no tenant {tenant_slug!r}")
        source = {p: self._credential(tenant_id, p) for p in _PUBLISHING + ("google-ads", "ga4")}
        settings = self._settings
        timeout = settings.integration_timeout_s
        # Live mode: a provider the tenant has not connected gets no adapter (its formats are
        # refused with "connect it first"); sandbox mode falls back to the sandbox's accounts.
        accounts = {p: await _account(source[p]) for p in source}
        connected = {p for p in _PUBLISHING if accounts[p] is not None}
        ads_account, ga4_account = accounts["google-ads"], accounts["ga4"]
        wordpress, linkedin, instagram = (accounts[p] or {} for p in ("wordpress", "linkedin", "instagram"))
        wordpress_url = None
        if "wordpress" in connected:
            try:
                wordpress_url = wordpress.get("site_url") or settings.provider_url("wordpress")
            except ValueError:  # live mode, and neither the credential nor the settings name the site
                connected.discard("wordpress")
        # The stored google-ads secret carries the developer token (auth_headers adds it).
        ads = None if ads_account is None else GoogleAdsClient(
            settings.provider_url("google-ads"), source["google-ads"], None, ads_account["customer_id"],
            ads_account.get("login_customer_id"), timeout_s=timeout,
        )
        return TenantAdapters(
            publishing=build_publishing_router(
                settings,
                ads=ads,
                linkedin_author=f"urn:li:organization:{linkedin.get('organization_id', '')}",
                instagram_user_id=str(instagram.get("ig_user_id", "")),
                instagram_image_url=instagram.get("image_url"),
                wordpress_url=wordpress_url,
                email_from=settings.email_sender,
                email_to=[settings.email_list_address],
                credentials={p: source[p] for p in _PUBLISHING},
                fallback=self._channel,
                connected=connected,
            ),
            ads_client=ads,
            analytics_client=None if ga4_account is None else Ga4Analytics(
                settings.provider_url("ga4"), source["ga4"], timeout_s=timeout
            ),
            ga4_property=str((ga4_account or {}).get("property_id", "")),
        )

    def _credential(self, tenant_id: uuid.UUID, provider: str) -> SandboxFallbackCredential:
        stored = TenantCredentialSource(self._sessions, tenant_id, provider, cipher=self._cipher)
        return SandboxFallbackCredential(stored, self._sandbox_token)

    async def aclose(self) -> None:
        for _, adapters in [*self._adapters.values(), *self._replaced]:
            await adapters.aclose()
        self._adapters.clear()
        self._replaced.clear()
