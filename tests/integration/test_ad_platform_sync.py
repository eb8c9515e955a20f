"""Two-way budget/status sync with Google Ads: the APPLY_ITEM_BUDGETS activity, called directly,
against the sandbox's Google Ads face (real HTTP) and a real PostgreSQL.

Posts are published with a paid budget through the channel API (each is then an ads campaign);
between two rounds a "person" edits the campaigns through the face's own mutate endpoints, as
someone in the Google Ads UI would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities.channel_publishing import ChannelActivities
from agency.channels import ChannelClient
from agency.contracts import (
    ItemBudgetsRequest,
    ItemBudgetsResult,
    MetricsRequest,
    PublishedRef,
    PublishRequest,
)
from agency.db.models import AuditEvent, Tenant
from agency.db.models_ad_sync import AdPlatformItemState
from agency.integrations.accounts import SANDBOX_ACCOUNTS, TenantProviders
from agency.integrations.ads import CampaignMetrics, GoogleAdsClient
from agency.integrations.http import bearer
from agency.settings import Settings
from agency.sync.ad_platform import snapshot_hash
from tests.integration.conftest import SANDBOX_TOKEN, Sandbox, free_port

pytestmark = pytest.mark.integration

CUSTOMER = SANDBOX_ACCOUNTS["google-ads"]["customer_id"]
MICROS_PER_CENT = 10_000
BODY = "Our lightest trail shoe is back. Shop the spring sale before Sunday and get free returns!"
# Small budgets: spend moves slowly enough (3,600x simulated time) for the face's pause, which
# freezes the budget at the spend it reads, to settle on its first tries.
POST_BUDGET = 2_000


@pytest.fixture
def settings(migrated_database_url: str, sandbox: Sandbox, tmp_path) -> Settings:
    # Built directly: nothing here needs Temporal or a model server (dead addresses, never dialled).
    dead = f"127.0.0.1:{free_port()}"
    return Settings(
        environment="test", data_dir=tmp_path / "data", database_url=migrated_database_url,
        temporal_address=dead, triton_url=dead, channel_base_url=sandbox.url, channel_token=SANDBOX_TOKEN,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def channel(sandbox: Sandbox) -> AsyncIterator[ChannelClient]:
    async with ChannelClient(sandbox.url, token=SANDBOX_TOKEN) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def activities(settings: Settings, sessions, channel: ChannelClient) -> AsyncIterator[ChannelActivities]:
    providers = TenantProviders(settings, sessions, channel)
    try:
        yield ChannelActivities(channel, providers, sessions)
    finally:
        await providers.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(sessions) -> str:
    slug = f"adsync-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        session.add(Tenant(slug=slug, name="Ad sync test"))
    return slug


@pytest_asyncio.fixture(loop_scope="session")
async def ads(sandbox: Sandbox) -> AsyncIterator[GoogleAdsClient]:
    """Our view of the platform, to check what it shows after a round."""
    async with GoogleAdsClient(f"{sandbox.url}/google-ads", bearer(SANDBOX_TOKEN), "dev-token", CUSTOMER) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def person(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Someone working in the Google Ads UI (same account, its own requests)."""
    async with httpx.AsyncClient(
        base_url=f"{sandbox.url}/google-ads/v17/customers/{CUSTOMER}",
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}", "developer-token": "ui-session"}, timeout=10,
    ) as client:
        yield client


class Campaign:
    """One campaign's promoted posts and the rounds run on them."""

    def __init__(self, activities: ChannelActivities, tenant: str, posts: list[PublishedRef]) -> None:
        self.id = posts[0].item_id.split(":")[0]
        self.activities = activities
        self.tenant = tenant
        self.posts = posts

    def post(self, n: int) -> str:
        return self.posts[n].external_id

    def item(self, n: int) -> str:
        return self.posts[n].item_id

    async def request(self, round_no: int, channel_cents: int) -> ItemBudgetsRequest:
        snapshot = await self.activities.collect_metrics(
            MetricsRequest(campaign_id=self.id, round=round_no, published=self.posts, tenant=self.tenant)
        )
        return ItemBudgetsRequest(
            campaign_id=self.id, round=round_no, channel_cents={"social": channel_cents}, arm_weights={},
            snapshot=snapshot, tenant=self.tenant,
        )

    async def round(self, round_no: int, channel_cents: int) -> ItemBudgetsResult:
        return await self.activities.apply_item_budgets(await self.request(round_no, channel_cents))


async def campaign(activities: ChannelActivities, channel: ChannelClient, tenant: str, n: int = 3) -> Campaign:
    campaign_id = f"cmp_{uuid.uuid4().hex[:12]}"
    posts = []
    for i in range(n):
        req = PublishRequest(
            campaign_id=campaign_id, item_id=f"{campaign_id}:social:{i}", version=1, channel="social",
            format="social_post", title="", body=f"{BODY} #{i}", budget_cents=POST_BUDGET,
            idempotency_key=f"{campaign_id}:social:{i}:v1",
        )
        result = await channel.publish(req)
        posts.append(PublishedRef(item_id=req.item_id, channel="social", external_id=result.external_id))
    return Campaign(activities, tenant, posts)


async def pause(person: httpx.AsyncClient, post_id: str) -> None:
    response = await person.post("/campaigns:mutate", json={"operations": [{
        "update": {"resourceName": f"customers/{CUSTOMER}/campaigns/{post_id}", "status": "PAUSED"},
        "updateMask": "status",
    }]})
    assert response.status_code == 200, response.text


async def set_total(person: httpx.AsyncClient, post_id: str, cents: int) -> None:
    response = await person.post("/campaignBudgets:mutate", json={"operations": [{
        "update": {"resourceName": f"customers/{CUSTOMER}/campaignBudgets/{post_id}",
                   "totalAmountMicros": str(cents * MICROS_PER_CENT)},
        "updateMask": "totalAmountMicros",
    }]})
    assert response.status_code == 200, response.text


async def platform(ads: GoogleAdsClient, c: Campaign) -> dict[str, CampaignMetrics]:
    return await ads.campaign_metrics(p.external_id for p in c.posts)


async def stored(sessions, c: Campaign) -> dict[str, AdPlatformItemState]:
    async with sessions() as session:
        rows = (await session.scalars(
            select(AdPlatformItemState).where(AdPlatformItemState.campaign_id == c.id)
        )).all()
    return {r.item_id: r for r in rows}


async def audited_changes(sessions, c: Campaign) -> list[dict]:
    async with sessions() as session:
        events = (await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "ad_platform.change_detected",
                   AuditEvent.detail["campaign_id"].astext == c.id)
            .order_by(AuditEvent.id)
        )).all()
    return [dict(e.detail) for e in events]


def total_cents(row: CampaignMetrics) -> int:
    return row.total_budget_micros // MICROS_PER_CENT


async def test_a_pause_on_the_platform_is_respected_and_the_channel_is_split_over_the_others(
    activities, channel, tenant, person, ads, sessions
) -> None:
    c = await campaign(activities, channel, tenant)
    first = await c.round(1, 9_000)
    assert first.platform_changes == [] and first.held == {} and first.updated == 3
    remembered = first.budgets[c.item(0)]

    await pause(person, c.post(0))
    second = await c.round(2, 9_000)

    [change] = second.platform_changes
    assert (change.item_id, change.field, change.before, change.after, change.resolution) == (
        c.item(0), "status", "ENABLED", "PAUSED", "respected"
    )
    assert second.held == {c.item(0): "paused"} and second.updated == 2
    # The paused item counts for what it spent; the other two share the rest of the 9,000.
    assert sum(second.budgets.values()) == 9_000 and second.channel_gap_cents == {}
    now = await platform(ads, c)
    paused = now[c.post(0)]
    assert paused.status == "PAUSED"  # not re-enabled by us
    assert total_cents(paused) == remembered  # its total untouched: the person's resume gets it back
    assert paused.cost_micros // MICROS_PER_CENT == second.budgets[c.item(0)]
    for n in (1, 2):
        assert now[c.post(n)].status == "ENABLED"
        assert total_cents(now[c.post(n)]) == second.budgets[c.item(n)]
        assert second.budgets[c.item(n)] > first.budgets[c.item(n)]  # they took over its share

    rows = await stored(sessions, c)
    assert rows[c.item(0)].status == "PAUSED" and rows[c.item(0)].snapshot_hash == snapshot_hash("PAUSED", remembered)
    [event] = await audited_changes(sessions, c)
    assert (event["item_id"], event["field"], event["after"], event["round"]) == (c.item(0), "status", "PAUSED", 2)

    # Still paused a round later: nothing new to report, still no budget for it.
    third = await c.round(3, 9_000)
    assert third.platform_changes == [] and third.held == {c.item(0): "paused"}
    assert (await platform(ads, c))[c.post(0)].status == "PAUSED"


async def test_a_total_edited_on_the_platform_is_kept_and_the_other_items_absorb_it(
    activities, channel, tenant, person, ads, sessions
) -> None:
    c = await campaign(activities, channel, tenant)
    first = await c.round(1, 9_000)
    edited = first.budgets[c.item(1)] + 1_500

    await set_total(person, c.post(1), edited)
    second = await c.round(2, 9_000)

    [change] = second.platform_changes
    assert (change.item_id, change.field, change.before, change.after, change.resolution) == (
        c.item(1), "total_budget_cents", str(first.budgets[c.item(1)]), str(edited), "kept"
    )
    assert second.held == {c.item(1): "platform_budget"}
    now = await platform(ads, c)
    assert total_cents(now[c.post(1)]) == edited == second.budgets[c.item(1)]
    # The channel still totals what the campaign wants: items 0 and 2 gave up the 1,500.
    assert total_cents(now[c.post(0)]) + total_cents(now[c.post(2)]) == 9_000 - edited
    assert sum(second.budgets.values()) == 9_000
    rows = await stored(sessions, c)
    assert rows[c.item(1)].total_budget_cents == edited and rows[c.item(1)].kept_round == 2

    # The next round's decision is newer than the person's edit: it applies again.
    third = await c.round(3, 9_000)
    assert third.platform_changes == [] and third.held == {}
    assert total_cents((await platform(ads, c))[c.post(1)]) == third.budgets[c.item(1)] != edited


async def test_when_both_sides_change_the_same_item_the_platform_newer_wins_and_it_is_reported(
    activities, channel, tenant, person, ads, sessions
) -> None:
    c = await campaign(activities, channel, tenant)
    first = await c.round(1, 6_000)
    theirs = first.budgets[c.item(2)] + 500

    await set_total(person, c.post(2), theirs)
    # The campaign doubles the channel meanwhile: it wants far more for item 2 than either total.
    request = await c.request(2, 12_000)
    second = await c.activities.apply_item_budgets(request)

    [change] = second.platform_changes
    assert change.item_id == c.item(2) and change.conflict
    assert change.wanted_cents > theirs and change.after == str(theirs)
    now = await platform(ads, c)
    assert total_cents(now[c.post(2)]) == theirs
    assert total_cents(now[c.post(0)]) + total_cents(now[c.post(1)]) + theirs == 12_000
    [event] = await audited_changes(sessions, c)
    assert event["conflict"] is True and event["wanted_cents"] == change.wanted_cents


async def test_a_retried_round_leaves_the_platform_as_one_run_does_and_one_row_per_item(
    activities, channel, tenant, person, ads, sessions, sandbox
) -> None:
    c = await campaign(activities, channel, tenant)
    await c.round(1, 9_000)
    await pause(person, c.post(0))
    await set_total(person, c.post(1), 3_333)

    request = await c.request(2, 9_000)
    once = await activities.apply_item_budgets(request)
    after_once = await platform(ads, c)
    rows_once = await stored(sessions, c)
    twice = await activities.apply_item_budgets(request)  # Temporal retried it (or it ran twice)
    after_twice = await platform(ads, c)
    rows_twice = await stored(sessions, c)

    assert [(ch.item_id, ch.field) for ch in once.platform_changes] == [(c.item(0), "status"), (c.item(1), "total_budget_cents")]
    assert twice.platform_changes == []  # already agreed: not reported (nor audited) twice
    assert twice.held == once.held == {c.item(0): "paused", c.item(1): "platform_budget"}
    assert twice.budgets == once.budgets
    for p in c.posts:
        assert (after_twice[p.external_id].status, after_twice[p.external_id].total_budget_micros) == (
            after_once[p.external_id].status, after_once[p.external_id].total_budget_micros
        )
    assert total_cents(after_twice[c.post(1)]) == 3_333
    assert sorted(rows_twice) == sorted(p.item_id for p in c.posts)
    assert {i: r.snapshot_hash for i, r in rows_twice.items()} == {i: r.snapshot_hash for i, r in rows_once.items()}
    async with sessions() as session:
        assert await session.scalar(
            select(func.count()).select_from(AdPlatformItemState).where(AdPlatformItemState.campaign_id == c.id)
        ) == 3
    assert len(await audited_changes(sessions, c)) == 2


async def test_a_write_whose_answer_was_lost_is_not_taken_for_a_person_on_the_retry(
    activities, channel, tenant, ads, sessions, sandbox
) -> None:
    c = await campaign(activities, channel, tenant)
    await c.round(1, 6_000)
    request = await c.request(2, 12_000)
    admin = httpx.AsyncClient(base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)
    async with admin:
        # Every in-call try of the first budget write is applied, but its answer is lost: the
        # activity attempt fails after the platform already has the new total.
        (await admin.put("/_sandbox/faults/google-ads", json={"rules": [{
            "count": 4, "status_code": 503, "after_commit": True, "methods": ["POST"],
            "path_contains": "campaignBudgets:mutate",
        }]})).raise_for_status()
        try:
            with pytest.raises(ApplicationError) as failed:
                await activities.apply_item_budgets(request)
            assert failed.value.type == "ProviderUnavailable.google-ads" and not failed.value.non_retryable
        finally:
            (await admin.put("/_sandbox/faults/google-ads", json={"rules": []})).raise_for_status()
    rows = await stored(sessions, c)
    assert any(r.pending_budget_cents is not None for r in rows.values())

    retried = await activities.apply_item_budgets(request)
    assert retried.platform_changes == [] and retried.held == {}
    now = await platform(ads, c)
    assert {p.item_id: total_cents(now[p.external_id]) for p in c.posts} == retried.budgets
    assert sum(retried.budgets.values()) == 12_000
    assert all(r.pending_budget_cents is None for r in (await stored(sessions, c)).values())
    assert await audited_changes(sessions, c) == []
