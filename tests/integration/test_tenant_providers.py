"""A tenant's adapters in live mode come from its stored credentials only: a provider it has not
connected gets no adapter, and its formats are refused with "connect it first" while the
connected ones publish; a provider connected later is picked up without a restart.

Live mode here means the adapters' live behaviour (no sandbox-token fallback) with each
provider's base URL pointed at the sandbox's face of it (``AGENCY_PROVIDER_BASE_URLS``).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from agency.contracts import PublishRequest
from agency.db.models import Tenant
from agency.integrations import accounts
from agency.integrations.accounts import TenantProviders
from agency.integrations.credentials import CredentialCipher, store_credential
from agency.integrations.errors import ProviderRejected
from agency.settings import Settings
from conftest import SANDBOX_TOKEN, Sandbox, free_port, fresh_tenant

pytestmark = pytest.mark.integration

FACES = ("wordpress", "x", "linkedin", "instagram", "resend", "google-ads", "ga4")


@pytest.fixture
def live_settings(migrated_database_url: str, sandbox: Sandbox, tmp_path) -> Settings:
    dead = f"127.0.0.1:{free_port()}"  # no Temporal or Triton here
    return Settings(
        environment="test", data_dir=tmp_path / "data", database_url=migrated_database_url,
        temporal_address=dead, triton_url=dead, channel_base_url=sandbox.url, channel_token=SANDBOX_TOKEN,
        integrations_target="live", provider_base_urls={face: f"{sandbox.url}/{face}" for face in FACES},
    )


async def new_tenant(sessions) -> tuple[str, uuid.UUID]:
    slug = fresh_tenant("live")
    async with sessions() as session, session.begin():
        tenant = Tenant(slug=slug, name=slug)
        session.add(tenant)
        await session.flush()
        return slug, tenant.id


async def connect(sessions, settings: Settings, tenant_id: uuid.UUID, provider: str, secret: dict) -> None:
    async with sessions() as session, session.begin():
        await store_credential(
            session, CredentialCipher.from_settings(settings), tenant_id, provider, secret, created_by="test"
        )


def request(fmt: str, campaign_id: str, budget_cents: int = 1_500) -> PublishRequest:
    item_id = f"{campaign_id}:{fmt}:1"
    return PublishRequest(
        campaign_id=campaign_id, item_id=item_id, version=1, channel="social", format=fmt, title="",
        body=f"Trailblaze boots keep feet dry on long wet trails. {uuid.uuid4().hex[:6]} #hiking",
        budget_cents=budget_cents, idempotency_key=f"{item_id}:v1",
    )


async def test_only_connected_providers_publish_and_a_later_connection_is_picked_up(
    live_settings: Settings, sessions, sandbox: Sandbox, monkeypatch
):
    slug, tenant_id = await new_tenant(sessions)
    await connect(sessions, live_settings, tenant_id, "x", {"access_token": SANDBOX_TOKEN})
    await connect(sessions, live_settings, tenant_id, "google-ads", {
        "access_token": SANDBOX_TOKEN, "developer_token": "dev-token-1", "customer_id": "1234567890",
    })
    providers = TenantProviders(live_settings, sessions)
    try:
        adapters = await providers.for_tenant(slug)
        campaign_id = f"live-{uuid.uuid4().hex[:8]}"

        published = await adapters.publishing.publish(request("x_post", campaign_id))
        metrics = await adapters.ads.campaign_metrics([published.external_id])
        assert metrics[published.external_id].total_budget_micros == 1_500 * 10_000

        with pytest.raises(ProviderRejected) as refused:
            await adapters.publishing.publish(request("linkedin_post", campaign_id))
        assert (refused.value.provider, refused.value.code) == ("linkedin", "no_publisher")
        assert "not connected" in refused.value.message
        with pytest.raises(ProviderRejected) as no_analytics:
            adapters.analytics
        assert (no_analytics.value.provider, no_analytics.value.code) == ("ga4", "not_connected")

        # Connected afterwards: the next rebuild (no restart) publishes LinkedIn posts too.
        await connect(sessions, live_settings, tenant_id, "linkedin", {
            "access_token": SANDBOX_TOKEN, "organization_id": "2414183",
        })
        monkeypatch.setattr(accounts, "REBUILD_AFTER_S", 0.0)
        rebuilt = await providers.for_tenant(slug)
        assert rebuilt is not adapters
        post = await rebuilt.publishing.publish(request("linkedin_post", campaign_id))
        assert post.external_id.startswith("urn:li:")
    finally:
        await providers.aclose()

    # Live adapters send what the real APIs take (no campaign correlation): look the posts up by id.
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10
    ) as channel:
        found = [(await channel.get(f"/v1/posts/{ref}")).json() for ref in (published.external_id, post.external_id)]
    assert [p["format"] for p in found] == ["x_post", "linkedin_post"]
