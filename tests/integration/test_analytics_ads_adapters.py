"""The GA4 and Google Ads adapters against the sandbox's provider faces, over real HTTP.

Posts are published through the channel API; the faces are views over the same simulated world,
so what the adapters read must agree with the channel's own metrics at the same simulated time
(GA4 minus its processing lag), and budgets set through Google Ads must be the posts' budgets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from agency.channels import ChannelClient
from agency.contracts import PublishRequest
from agency.integrations.ads import BudgetBelowSpend, GoogleAdsClient
from agency.integrations.analytics import Ga4Analytics
from agency.integrations.errors import ProviderAuthFailed, ProviderRejected, ProviderUnavailable
from agency.integrations.http import bearer
from agency.integrations.reliability import RetryPolicy
from agency.sandbox.audience import audience_model
from tests.integration.conftest import SANDBOX_TOKEN, Sandbox

pytestmark = pytest.mark.integration

CUSTOMER = "1234567890"
PROPERTY = "424242"
MICROS_PER_CENT = 10_000
BODY = "Our lightest trail shoe is back. Shop the spring sale before Sunday and get free returns!"
COUNTERS = ("impressions", "clicks", "conversions", "spend_cents")


@pytest_asyncio.fixture(loop_scope="session")
async def channel(sandbox: Sandbox) -> AsyncIterator[ChannelClient]:
    async with ChannelClient(sandbox.url, token=SANDBOX_TOKEN) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def admin(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's own API (channel metrics, faults, counters, face settings)."""
    async with httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def ads(sandbox: Sandbox) -> AsyncIterator[GoogleAdsClient]:
    async with GoogleAdsClient(
        f"{sandbox.url}/google-ads", bearer(SANDBOX_TOKEN), "dev-token-123", CUSTOMER, login_customer_id="111-222-3333"
    ) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def ga4(sandbox: Sandbox) -> AsyncIterator[Ga4Analytics]:
    async with Ga4Analytics(f"{sandbox.url}/ga4", bearer(SANDBOX_TOKEN)) as client:
        yield client


async def publish(channel: ChannelClient, campaign: str, n: int, budget_cents: int = 5_000) -> dict:
    """One social post of ``campaign``; the post as the channel lists it."""
    req = PublishRequest(
        campaign_id=campaign, item_id=f"{campaign}:social:{n}", version=1, channel="social",
        format="social_post", title="", body=BODY, budget_cents=budget_cents,
        idempotency_key=f"{campaign}:{n}:v1",
    )
    result = await channel.publish(req)
    return {"id": result.external_id, "item_id": req.item_id, "budget_cents": budget_cents}


async def channel_metrics(admin: httpx.AsyncClient, post_id: str) -> dict:
    response = await admin.get(f"/v1/posts/{post_id}/metrics")
    assert response.status_code == 200, response.text
    return response.json()


async def request_counts(admin: httpx.AsyncClient, face: str) -> dict[str, int]:
    response = await admin.get(f"/_sandbox/requests/{face}")
    assert response.status_code == 200, response.text
    return response.json()["counts"]


def new_campaign() -> str:
    return f"cmp-{uuid.uuid4().hex[:12]}"


# ---- Google Ads ---------------------------------------------------------------------------------
async def test_campaign_metrics_equal_the_channels_at_the_same_simulated_time(
    channel: ChannelClient, admin: httpx.AsyncClient, ads: GoogleAdsClient
) -> None:
    campaign = new_campaign()
    posts = [await publish(channel, campaign, n, budget_cents=4_000 + 1_000 * n) for n in range(3)]
    unpaid = await publish(channel, campaign, 9, budget_cents=0)
    await asyncio.sleep(0.5)  # half a simulated hour: every counter has moved

    before = {p["id"]: await channel_metrics(admin, p["id"]) for p in posts}
    found = await ads.campaign_metrics([p["id"] for p in posts] + [unpaid["id"]])
    after = {p["id"]: await channel_metrics(admin, p["id"]) for p in posts}

    # Every post is a campaign (providers publish organically, then the budget is set there);
    # one without a paid budget has a total of 0 and spends nothing.
    assert sorted(found) == sorted([p["id"] for p in posts] + [unpaid["id"]])
    assert found[unpaid["id"]].total_budget_micros == 0 and found[unpaid["id"]].cost_micros == 0
    for post in posts:
        row = found[post["id"]]
        ads_values = {"impressions": row.impressions, "clicks": row.clicks, "conversions": int(row.conversions),
                      "spend_cents": row.cost_micros // MICROS_PER_CENT}
        # Read between two channel reads: every counter lies between them (all are monotone).
        for name in COUNTERS:
            assert before[post["id"]][name] <= ads_values[name] <= after[post["id"]][name], (name, post)
        assert after[post["id"]]["impressions"] > 0 and row.cost_micros > 0
        assert row.cost_micros % MICROS_PER_CENT == 0
        assert row.total_budget_micros == post["budget_cents"] * MICROS_PER_CENT
        assert row.status == "ENABLED"
        assert row.resource_name == f"customers/{CUSTOMER}/campaigns/{post['id']}"
        assert row.budget_resource_name == f"customers/{CUSTOMER}/campaignBudgets/{post['id']}"


async def test_search_follows_page_tokens(channel: ChannelClient, admin: httpx.AsyncClient, ads: GoogleAdsClient) -> None:
    campaign = new_campaign()
    posts = [await publish(channel, campaign, n) for n in range(5)]
    ids = [p["id"] for p in posts]
    assert (await admin.put("/google-ads/_sandbox/page-size", json={"page_size": 2})).status_code == 200
    await admin.delete("/_sandbox/requests/google-ads")
    try:
        first = await ads.search(f"SELECT campaign.id FROM campaign WHERE campaign.id IN ({', '.join(repr(i) for i in ids)})")
        rows = [row async for row in ads.search_all(
            "SELECT campaign.id, metrics.clicks FROM campaign WHERE campaign.id IN "
            f"({', '.join(repr(i) for i in ids)}) ORDER BY campaign.id DESC"
        )]
        found = await ads.campaign_metrics(ids)
    finally:
        await admin.put("/google-ads/_sandbox/page-size", json={"page_size": 10_000})

    assert len(first.results) == 2 and first.next_page_token
    assert [r["campaign"]["id"] for r in rows] == sorted(ids, reverse=True)
    assert sorted(found) == sorted(ids)
    # 1 single page + 3 pages + 3 pages: the adapter followed every token, and no more.
    assert request_counts_total(await request_counts(admin, "google-ads"), "googleAds:search", 200) == 7


def request_counts_total(counts: dict[str, int], route_part: str, status: int) -> int:
    return sum(n for key, n in counts.items() if route_part in key and key.endswith(f" {status}"))


async def test_budget_set_through_ads_is_the_posts_budget_and_repeats_are_harmless(
    channel: ChannelClient, admin: httpx.AsyncClient, ads: GoogleAdsClient
) -> None:
    post = await publish(channel, new_campaign(), 0)
    budget = f"customers/{CUSTOMER}/campaignBudgets/{post['id']}"

    assert await ads.set_total_budget(budget, 80 * 1_000_000) == budget
    await ads.set_total_budget(budget, 80 * 1_000_000)  # a retry of the same absolute update

    view = (await admin.get(f"/v1/posts/{post['id']}")).json()
    assert view["budget_cents"] == 8_000
    assert [c["budget_cents"] for c in view["budget_changes"]] == [8_000]
    row = (await ads.campaign_metrics([post["id"]]))[post["id"]]
    assert row.total_budget_micros == 80 * 1_000_000
    # The channel paces the new total: its spend never exceeds it and stays monotone.
    metrics = await channel_metrics(admin, post["id"])
    assert metrics["budget_cents"] == 8_000 and metrics["spend_cents"] <= 8_000


async def test_budget_below_spend_is_a_typed_error_with_the_spend(
    channel: ChannelClient, admin: httpx.AsyncClient, ads: GoogleAdsClient
) -> None:
    post = await publish(channel, new_campaign(), 0)
    budget = f"customers/{CUSTOMER}/campaignBudgets/{post['id']}"
    await asyncio.sleep(0.5)

    before = await channel_metrics(admin, post["id"])
    with pytest.raises(BudgetBelowSpend) as info:
        await ads.set_total_budget(budget, 0)
    after = await channel_metrics(admin, post["id"])

    error = info.value
    assert isinstance(error, ProviderRejected) and error.status_code == 400
    assert error.code == "campaignBudgetError.TOTAL_AMOUNT_TOO_SMALL"
    assert before["spend_cents"] * MICROS_PER_CENT <= error.spent_micros <= after["spend_cents"] * MICROS_PER_CENT
    assert error.spent_micros > 0
    assert after["budget_cents"] == 5_000 and after["budget_changes"] == []  # nothing applied

    # What the lead's activity does with it: retry at spend + headroom.
    headroom = 100 * MICROS_PER_CENT
    await ads.set_total_budget(budget, error.spent_micros + headroom)
    assert (await channel_metrics(admin, post["id"]))["budget_cents"] == error.spent_micros // MICROS_PER_CENT + 100


async def test_pause_stops_spend_and_enable_restores_the_budget(
    channel: ChannelClient, admin: httpx.AsyncClient, ads: GoogleAdsClient
) -> None:
    post = await publish(channel, new_campaign(), 0)
    campaign = ads.campaign_resource_name(post["id"])
    await asyncio.sleep(0.3)

    await ads.set_campaign_status(campaign, "PAUSED")
    await ads.set_campaign_status(campaign, "PAUSED")  # repeat: harmless
    paused = await channel_metrics(admin, post["id"])
    row = (await ads.campaign_metrics([post["id"]]))[post["id"]]
    await asyncio.sleep(0.3)
    still = await channel_metrics(admin, post["id"])

    assert row.status == "PAUSED" and row.total_budget_micros == 5_000 * MICROS_PER_CENT
    assert paused["budget_cents"] == paused["spend_cents"] == still["spend_cents"]  # no delivery while paused
    assert len(paused["budget_changes"]) == 1

    await ads.set_campaign_status(campaign, "ENABLED")
    resumed = await channel_metrics(admin, post["id"])
    assert resumed["budget_cents"] == 5_000
    assert (await ads.campaign_metrics([post["id"]]))[post["id"]].status == "ENABLED"


async def test_quota_storm_is_ridden_out_with_retry_after(
    sandbox: Sandbox, channel: ChannelClient, admin: httpx.AsyncClient, ads: GoogleAdsClient
) -> None:
    post = await publish(channel, new_campaign(), 0)
    await admin.delete("/_sandbox/requests/google-ads")
    storm = {"rules": [{"count": 2, "status_code": 429, "retry_after_s": 0.2, "methods": ["POST"],
                        "path_contains": "googleAds:search"}]}
    assert (await admin.put("/_sandbox/faults/google-ads", json=storm)).status_code == 200

    found = await ads.campaign_metrics([post["id"]])

    assert post["id"] in found
    counts = await request_counts(admin, "google-ads")
    assert request_counts_total(counts, "googleAds:search", 429) == 2
    assert request_counts_total(counts, "googleAds:search", 200) == 1

    # A storm longer than the in-call retries: ProviderUnavailable carrying the provider's wait.
    storm["rules"][0]["count"] = 3
    await admin.put("/_sandbox/faults/google-ads", json=storm)
    async with GoogleAdsClient(
        f"{sandbox.url}/google-ads", bearer(SANDBOX_TOKEN), "dev-token-123", CUSTOMER,
        retry=RetryPolicy(max_attempts=2),
    ) as impatient:
        with pytest.raises(ProviderUnavailable) as info:
            await impatient.campaign_metrics([post["id"]])
    await admin.delete("/_sandbox/faults/google-ads")
    assert info.value.status_code == 429 and info.value.retry_after_s == pytest.approx(0.2)


async def test_invalid_gaql_is_rejected_like_google_does(ads: GoogleAdsClient) -> None:
    with pytest.raises(ProviderRejected) as unknown_field:
        await ads.search("SELECT campaign.id, metrics.nonsense FROM campaign")
    with pytest.raises(ProviderRejected) as unsupported:
        await ads.search("SELECT ad_group.id FROM ad_group")
    with pytest.raises(ProviderRejected) as syntax:
        await ads.search("SELECT campaign.id FROM campaign WHERE campaign.id LIKE 'x%'")

    assert unknown_field.value.status_code == 400
    assert unknown_field.value.code == "queryError.UNRECOGNIZED_FIELD"
    assert unsupported.value.code == "queryError.BAD_RESOURCE_TYPE_IN_FROM_CLAUSE"
    assert syntax.value.code.startswith("queryError.")
    assert syntax.value.body["error"]["status"] == "INVALID_ARGUMENT"
    # Ids are never spliced into GAQL unchecked.
    with pytest.raises(ValueError):
        await ads.campaign_metrics(["x') OR campaign.id != ('"])


async def test_ads_refuses_a_bad_token_or_a_missing_developer_token(sandbox: Sandbox) -> None:
    async with GoogleAdsClient(f"{sandbox.url}/google-ads", bearer("not-the-token"), "dev-token-123", CUSTOMER) as wrong:
        with pytest.raises(ProviderAuthFailed) as bad_token:
            await wrong.search("SELECT campaign.id FROM campaign")
    async with GoogleAdsClient(f"{sandbox.url}/google-ads", bearer(SANDBOX_TOKEN), None, CUSTOMER) as no_dev:
        with pytest.raises(ProviderAuthFailed) as no_developer_token:
            await no_dev.search("SELECT campaign.id FROM campaign")
    assert bad_token.value.code == "authenticationError.OAUTH_TOKEN_INVALID"
    assert no_developer_token.value.code == "authenticationError.DEVELOPER_TOKEN_PARAMETER_MISSING"


# ---- GA4 ------------------------------------------------------------------------------------------
async def set_processing_lag(admin: httpx.AsyncClient, simulated_s: float) -> None:
    response = await admin.put("/ga4/_sandbox/processing-lag", json={"simulated_s": simulated_s})
    assert response.status_code == 200, response.text


async def test_ga4_reports_the_channels_clicks_and_conversions_minus_the_processing_lag(
    channel: ChannelClient, admin: httpx.AsyncClient, ga4: Ga4Analytics
) -> None:
    lag = 1_800.0
    await set_processing_lag(admin, lag)
    campaign = new_campaign()
    posts = [await publish(channel, campaign, n, budget_cents=20_000 * (n + 1)) for n in range(3)]
    await asyncio.sleep(1.5)

    before = {p["id"]: await channel_metrics(admin, p["id"]) for p in posts}
    report = await ga4.item_engagement(PROPERTY, [campaign])
    after = {p["id"]: await channel_metrics(admin, p["id"]) for p in posts}

    assert sorted(report) == sorted((campaign, p["item_id"]) for p in posts)
    for post in posts:
        model = audience_model(post["id"], "social", "", BODY, post["budget_cents"])
        low = model.at(before[post["id"]]["elapsed_simulated_s"] - lag)
        high = model.at(after[post["id"]]["elapsed_simulated_s"] - lag)
        got = report[(campaign, post["item_id"])]
        # GA4 is the channel's own numbers, as of processing_lag earlier.
        assert low.clicks <= got.sessions <= high.clicks
        assert low.conversions <= got.key_events <= high.conversions
        assert got.sessions <= after[post["id"]]["clicks"]
        assert got.sessions > 0


async def test_ga4_lag_makes_a_fresh_items_report_grow(
    channel: ChannelClient, admin: httpx.AsyncClient, ga4: Ga4Analytics
) -> None:
    await set_processing_lag(admin, 7_200.0)  # two real seconds at the sandbox's 3600x
    try:
        campaign = new_campaign()
        post = await publish(channel, campaign, 0)
        await asyncio.sleep(0.6)
        fresh = await ga4.item_engagement(PROPERTY, [campaign])
        live = await channel_metrics(admin, post["id"])
        await asyncio.sleep(2.4)
        later = await ga4.item_engagement(PROPERTY, [campaign])
    finally:
        await set_processing_lag(admin, 1_800.0)

    key = (campaign, post["item_id"])
    assert live["clicks"] > 0  # the channel already sees clicks...
    assert key not in fresh  # ...that GA4 has not processed yet
    assert later[key].sessions > 0


async def test_ga4_run_report_pages_by_offset(
    channel: ChannelClient, admin: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await set_processing_lag(admin, 0.0)
    try:
        campaign = new_campaign()
        posts = [await publish(channel, campaign, n) for n in range(5)]
        await asyncio.sleep(0.3)
        request = dict(
            date_ranges=[("7daysAgo", "today")],
            dimensions=["sessionManualAdContent"],
            metrics=["sessions", "keyEvents"],
            dimension_filter={"filter": {"fieldName": "sessionCampaignName",
                                         "stringFilter": {"matchType": "EXACT", "value": campaign}}},
        )
        await admin.delete("/_sandbox/requests/ga4")
        async with Ga4Analytics(f"{sandbox.url}/ga4", bearer(SANDBOX_TOKEN), page_size=2) as paged:
            everything = await paged.run_report(PROPERTY, **request)
            window = await paged.run_report(PROPERTY, **request, offset=1, limit=3)
        counts = await request_counts(admin, "ga4")
    finally:
        await set_processing_lag(admin, 1_800.0)

    items = [row.dimensions[0] for row in everything.rows]
    assert items == sorted(p["item_id"] for p in posts)
    assert everything.row_count == 5 and everything.metric_headers == ("sessions", "keyEvents")
    assert everything.currency_code == "USD" and everything.time_zone == "Etc/UTC"
    assert [row.dimensions[0] for row in window.rows] == items[1:4]
    # 3 pages for 5 rows, 2 pages for the window of 3.
    assert request_counts_total(counts, ":runReport", 200) == 5


async def test_ga4_rejects_unknown_fields_and_rides_out_429s(
    channel: ChannelClient, admin: httpx.AsyncClient, ga4: Ga4Analytics
) -> None:
    with pytest.raises(ProviderRejected) as info:
        await ga4.run_report(PROPERTY, date_ranges=[("7daysAgo", "today")], dimensions=["city"], metrics=["sessions"])
    assert info.value.status_code == 400 and info.value.code == "INVALID_ARGUMENT"

    campaign = new_campaign()
    await publish(channel, campaign, 0)
    await admin.put("/_sandbox/faults/ga4", json={"rules": [{"count": 2, "status_code": 429, "retry_after_s": 0.1}]})
    await asyncio.sleep(1.0)
    report = await ga4.item_engagement(PROPERTY, [campaign])
    assert list(report) == [(campaign, f"{campaign}:social:0")]
