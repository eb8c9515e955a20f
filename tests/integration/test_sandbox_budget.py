"""Budget changes for live posts: ``PATCH /v1/posts/{id}`` on the real sandbox server over HTTP."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import ItemMetrics
from agency.sandbox.audience import CHANNEL_PROFILES, audience_model
from tests.integration.test_sandbox_channel import make_request, new_campaign, running_sandbox

# 36,000x: one real second is ten simulated hours (a social flight of 3 days lasts 7.2 s, an
# email flight of 1 day 2.4 s), so pacing visibly moves within a test.
TIME_SCALE = 36_000.0


@pytest.fixture(scope="module")
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory, token: str) -> Iterator[str]:
    db = tmp_path_factory.mktemp("sandbox_budget") / "sandbox.sqlite"
    with running_sandbox(db, token, time_scale=TIME_SCALE) as url:
        yield url


def new_key() -> str:
    return f"budget-{uuid.uuid4().hex}"


def assert_monotone_and_bounded(readings: list[ItemMetrics], budgets: list[int]) -> None:
    for m, budget in zip(readings, budgets):
        assert 0 <= m.conversions <= m.clicks <= m.impressions
        assert 0 <= m.spend_cents <= budget
    for before, after in zip(readings, readings[1:]):
        assert after.impressions >= before.impressions
        assert after.clicks >= before.clicks
        assert after.conversions >= before.conversions
        assert after.spend_cents >= before.spend_cents


# ---- the piecewise audience model (pure) -----------------------------------------------------
def test_model_without_changes_matches_even_pacing_over_the_flight() -> None:
    flight = CHANNEL_PROFILES["social"].flight_s
    model = audience_model("social_x", "social", "", "Shop now", 7_200)
    assert model.at(flight / 4).spend_cents == 1_800
    assert model.at(flight).spend_cents == 7_200 and model.at(10 * flight).spend_cents == 7_200


def test_model_paces_a_raised_budget_over_the_remaining_flight() -> None:
    flight = CHANNEL_PROFILES["social"].flight_s
    half = flight / 2
    base = audience_model("social_y", "social", "", "Shop now", 10_000)
    raised = audience_model("social_y", "social", "", "Shop now", 10_000, [(half, 30_000)])
    assert raised.at(half) == base.at(half)  # nothing changes up to the change
    spent = base.at(half).spend_cents  # 5,000
    # 25,000 left over the remaining half flight: 12,500 more at three quarters.
    assert raised.at(0.75 * flight).spend_cents == spent + 12_500
    assert raised.at(flight).spend_cents == 30_000
    assert raised.at(3 * flight).spend_cents == 30_000
    assert raised.at(0.75 * flight).impressions > base.at(0.75 * flight).impressions
    assert raised.budget_cents == 30_000


def test_model_lowered_to_spend_stops_spending_and_stays_monotone() -> None:
    flight = CHANNEL_PROFILES["blog"].flight_s
    base = audience_model("blog_z", "blog", "T", "Body", 7_000)
    at = flight / 7
    spent = base.at(at).spend_cents
    stopped = audience_model("blog_z", "blog", "T", "Body", 7_000, [(at, spent)])
    times = [at * k / 4 for k in range(20)]
    series = [stopped.at(t) for t in times]
    for a, b in zip(series, series[1:]):
        assert (b.impressions, b.clicks, b.conversions, b.spend_cents) >= (
            a.impressions, a.clicks, a.conversions, a.spend_cents)
        assert b.conversions <= b.clicks <= b.impressions
    assert all(m.spend_cents == spent for m in series[4:])  # from the change on: flat
    assert stopped.at(5 * flight).spend_cents == spent
    # A total below the spend (which the server refuses) cannot un-spend in the model either.
    below = audience_model("blog_z", "blog", "T", "Body", 7_000, [(at, 0)])
    assert below.at(2 * at).spend_cents == spent and below.budget_cents == spent


def test_model_after_the_flight_starts_a_new_flight_of_default_length() -> None:
    flight = CHANNEL_PROFILES["email"].flight_s
    late = 1.5 * flight
    model = audience_model("email_w", "email", "S", "Body", 1_000, [(late, 3_000)])
    assert model.at(late).spend_cents == 1_000
    assert model.at(late + flight / 2).spend_cents == 2_000
    assert model.at(late + flight).spend_cents == 3_000
    # Two changes: the second paces what is left over the first change's (new) flight.
    changes = [(late, 3_000), (late + flight / 2, 4_000)]
    twice = audience_model("email_w", "email", "S", "Body", 1_000, changes)
    assert twice.at(late + flight / 2).spend_cents == 2_000
    assert twice.at(late + 0.75 * flight).spend_cents == 3_000
    assert twice.at(late + flight).spend_cents == 4_000


# ---- over HTTP -------------------------------------------------------------------------------
async def test_raising_budget_raises_later_spend_and_keeps_counters_monotone(
    sandbox_url: str, token: str
) -> None:
    campaign = new_campaign()
    raised_req = make_request(campaign, channel="social", n=1, budget_cents=2_000)
    control_req = make_request(campaign, channel="social", n=2, budget_cents=2_000)
    async with ChannelClient(sandbox_url, token=token) as client:
        raised, control = await asyncio.gather(client.publish(raised_req), client.publish(control_req))
        readings: list[ItemMetrics] = []
        budgets: list[int] = []

        async def read() -> None:
            readings.append(await client.fetch_metrics(raised_req.item_id, "social", raised.external_id))

        for _ in range(3):
            await read()
            budgets.append(2_000)
            await asyncio.sleep(0.2)
        post = await client.update_budget(raised.external_id, 40_000, idempotency_key=new_key())
        for _ in range(4):
            await read()
            budgets.append(40_000)
            await asyncio.sleep(0.2)
        control_metrics = await client.fetch_metrics(control_req.item_id, "social", control.external_id)
        raw = httpx.get(f"{sandbox_url}/v1/posts/{raised.external_id}/metrics",
                        headers={"Authorization": f"Bearer {token}"}).json()
        listed = await client.list_posts(campaign)
        deliveries = await client.list_deliveries(campaign)

    assert post["id"] == raised.external_id and post["budget_cents"] == 40_000
    assert [c["budget_cents"] for c in post["budget_changes"]] == [40_000]
    assert_monotone_and_bounded(readings, budgets)
    # ~0.8 s after the change at 20x the remaining budget rate: clearly more than the control.
    assert readings[-1].spend_cents > 2 * control_metrics.spend_cents > 0
    assert raw["budget_cents"] == 40_000 and raw["budget_changes"] == post["budget_changes"]
    by_id = {p["id"]: p for p in listed}
    assert by_id[raised.external_id]["budget_cents"] == 40_000
    assert by_id[control.external_id]["budget_cents"] == 2_000
    assert by_id[control.external_id]["budget_changes"] == []
    updates = [d for d in deliveries if d["operation"] == "budget_update"]
    assert [(d["outcome"], d["status_code"], d["post_id"], d["budget_cents"]) for d in updates] == [
        ("updated", 200, raised.external_id, 40_000)]


async def test_lowering_below_spend_is_422_and_changes_nothing(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign, channel="social", budget_cents=5_000)
    async with ChannelClient(sandbox_url, token=token) as client:
        published = await client.publish(req)
        await asyncio.sleep(0.5)  # ~5 simulated hours: about 350 cents spent
        before = await client.fetch_metrics(req.item_id, "social", published.external_id)
        assert before.spend_cents > 1
        with pytest.raises(ChannelRejected) as info:
            await client.update_budget(published.external_id, 1, idempotency_key=new_key())
        after = await client.fetch_metrics(req.item_id, "social", published.external_id)
        posts = await client.list_posts(campaign)
        # Lowering to at least what is spent is allowed and then caps the spend. Spend grows by
        # about 700 cents per real second here, so leave a margin for a slow machine.
        floor = after.spend_cents + 1_500
        lowered = await client.update_budget(published.external_id, floor, idempotency_key=new_key())
        await asyncio.sleep(0.3)
        capped = await client.fetch_metrics(req.item_id, "social", published.external_id)

    assert info.value.status_code == 422 and info.value.code == "budget_below_spend"
    assert info.value.fields == ["budget_cents"]
    spent = info.value.body["error"]["details"][0]["spent_cents"]
    assert before.spend_cents <= spent <= after.spend_cents
    assert posts[0]["budget_cents"] == 5_000 and posts[0]["budget_changes"] == []
    assert lowered["budget_cents"] == floor
    assert after.spend_cents <= capped.spend_cents <= floor


async def test_same_key_replays_the_first_answer(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign, channel="blog", budget_cents=1_000)
    key = new_key()
    async with ChannelClient(sandbox_url, token=token) as client:
        published = await client.publish(req)
        first = await client.update_budget(published.external_id, 3_000, idempotency_key=key)
        second = await client.update_budget(published.external_id, 3_000, idempotency_key=key)
        await client.update_budget(published.external_id, 9_000, idempotency_key=new_key())
        later_replay = await client.update_budget(published.external_id, 3_000, idempotency_key=key)
        current = (await client.list_posts(campaign))[0]
        deliveries = await client.list_deliveries(campaign)
    replay_headers = httpx.patch(
        f"{sandbox_url}/v1/posts/{published.external_id}", json={"budget_cents": 3_000},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )

    assert first == second == later_replay  # the first answer, even after a later change
    assert first["budget_cents"] == 3_000 and len(first["budget_changes"]) == 1
    assert replay_headers.status_code == 200
    assert replay_headers.headers["Idempotent-Replayed"] == "true"
    assert current["budget_cents"] == 9_000
    assert [c["budget_cents"] for c in current["budget_changes"]] == [3_000, 9_000]
    assert [(d["operation"], d["outcome"]) for d in deliveries] == [
        ("publish", "created"), ("budget_update", "updated"), ("budget_update", "replayed"),
        ("budget_update", "updated"), ("budget_update", "replayed"),
    ]


async def test_key_reused_with_another_body_is_409(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    async with ChannelClient(sandbox_url, token=token) as client:
        one = await client.publish(make_request(campaign, channel="email", n=1))
        two = await client.publish(make_request(campaign, channel="email", n=2))
        key = new_key()
        await client.update_budget(one.external_id, 8_000, idempotency_key=key)
        with pytest.raises(ChannelRejected) as other_budget:
            await client.update_budget(one.external_id, 9_000, idempotency_key=key)
        with pytest.raises(ChannelRejected) as other_post:
            await client.update_budget(two.external_id, 8_000, idempotency_key=key)
        posts = {p["id"]: p for p in await client.list_posts(campaign)}

    for info in (other_budget, other_post):
        assert info.value.status_code == 409 and info.value.code == "idempotency_key_reused"
    assert posts[one.external_id]["budget_cents"] == 8_000
    assert posts[two.external_id]["budget_changes"] == []


async def test_unknown_post_is_404_and_bad_requests_are_4xx(sandbox_url: str, token: str) -> None:
    async with ChannelClient(sandbox_url, token=token) as client:
        with pytest.raises(ChannelRejected) as missing:
            await client.update_budget("social_nope", 100, idempotency_key=new_key())
        published = await client.publish(make_request(new_campaign()))
        with pytest.raises(ChannelRejected) as negative:
            await client.update_budget(published.external_id, -1, idempotency_key=new_key())
    assert missing.value.status_code == 404 and missing.value.code == "not_found"
    assert negative.value.status_code == 422 and negative.value.fields == ["budget_cents"]

    url = f"{sandbox_url}/v1/posts/{published.external_id}"
    auth = {"Authorization": f"Bearer {token}"}
    no_key = httpx.patch(url, json={"budget_cents": 10}, headers=auth)
    assert no_key.status_code == 400 and no_key.json()["error"]["code"] == "idempotency_key_missing"
    for bad in ({"budget_cents": "10"}, {"budget_cents": True}, {}, {"budget_cents": 10**13}):
        answer = httpx.patch(url, json=bad, headers={**auth, "Idempotency-Key": new_key()})
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["fields"] == ["budget_cents"]
    not_object = httpx.patch(url, json=[1], headers={**auth, "Idempotency-Key": new_key()})
    assert not_object.status_code == 400 and not_object.json()["error"]["code"] == "invalid_json"
    anonymous = httpx.patch(url, json={"budget_cents": 10}, headers={"Idempotency-Key": new_key()})
    assert anonymous.status_code == 401


async def test_injected_outage_after_commit_then_retry_is_replayed(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    auth = {"Authorization": f"Bearer {token}"}
    key = new_key()
    async with ChannelClient(sandbox_url, token=token) as client:
        published = await client.publish(make_request(campaign, channel="blog"))
        httpx.put(f"{sandbox_url}/v1/sandbox/faults", json={"count": 1, "status_code": 502},
                  headers=auth).raise_for_status()
        with pytest.raises(ChannelUnavailable) as before_commit:
            await client.update_budget(published.external_id, 6_000, idempotency_key=key)
        httpx.put(f"{sandbox_url}/v1/sandbox/faults",
                  json={"count": 1, "status_code": 503, "after_commit": True},
                  headers=auth).raise_for_status()
        with pytest.raises(ChannelUnavailable) as after_commit:
            await client.update_budget(published.external_id, 6_000, idempotency_key=key)
        retried = await client.update_budget(published.external_id, 6_000, idempotency_key=key)
        deliveries = await client.list_deliveries(campaign)

    assert before_commit.value.status_code == 502 and after_commit.value.status_code == 503
    assert after_commit.value.retry_after_s == 1.0
    assert retried["budget_cents"] == 6_000 and len(retried["budget_changes"]) == 1
    assert [(d["outcome"], d["status_code"]) for d in deliveries if d["operation"] == "budget_update"] == [
        ("failed", 502), ("updated", 503), ("replayed", 200)]


async def test_budget_after_the_flight_is_paced_over_a_new_flight(sandbox_url: str, token: str) -> None:
    # Email flights last one simulated day: 2.4 real seconds here.
    campaign = new_campaign()
    req = make_request(campaign, channel="email", budget_cents=1_000)
    async with ChannelClient(sandbox_url, token=token) as client:
        published = await client.publish(req)
        await asyncio.sleep(2.6)
        finished = await client.fetch_metrics(req.item_id, "email", published.external_id)
        await client.update_budget(published.external_id, 2_000, idempotency_key=new_key())
        await asyncio.sleep(0.6)  # about a quarter of the new flight
        resumed = await client.fetch_metrics(req.item_id, "email", published.external_id)

    assert finished.spend_cents == 1_000
    assert 1_000 < resumed.spend_cents < 2_000
    assert resumed.impressions > finished.impressions


async def test_budget_changes_survive_a_restart_and_v1_databases_migrate(
    tmp_path: Path, token: str
) -> None:
    db = tmp_path / "v1.sqlite"
    # A schema-v1 database, as written before budget changes existed.
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE deliveries (seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT"
            " NULL, channel TEXT NOT NULL, idempotency_key TEXT, campaign_id TEXT, item_id TEXT,"
            " outcome TEXT NOT NULL, status_code INTEGER NOT NULL, error_code TEXT, post_id TEXT);"
            " INSERT INTO deliveries (received_at, channel, outcome, status_code)"
            " VALUES (1.0, 'blog', 'rejected', 422); PRAGMA user_version=1;"
        )
    campaign = new_campaign()
    req = make_request(campaign, channel="blog")
    with running_sandbox(db, token, time_scale=TIME_SCALE) as url:
        async with ChannelClient(url, token=token) as client:
            published = await client.publish(req)
            await client.update_budget(published.external_id, 12_345, idempotency_key="k-restart")
    with running_sandbox(db, token, time_scale=TIME_SCALE) as url:
        async with ChannelClient(url, token=token) as client:
            post = (await client.list_posts(campaign))[0]
            replay = await client.update_budget(published.external_id, 12_345, idempotency_key="k-restart")
            old = [d for d in await client.list_deliveries() if d["campaign_id"] is None]
    assert post["budget_cents"] == 12_345 and replay["budget_changes"] == post["budget_changes"]
    assert [(d["operation"], d["outcome"]) for d in old] == [("publish", "rejected")]
