"""The channel adapter against the real sandbox server over HTTP (``python -m agency.sandbox``)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import PublishRequest
from agency.sandbox.audience import CHANNEL_PROFILES, audience_model

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_sandbox(db_path: Path, token: str, time_scale: float = 3600.0) -> Iterator[str]:
    """Run the sandbox CLI in a child process; always stop it."""
    port = free_port()
    log_path = db_path.with_suffix(f".{port}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agency.sandbox", "--host", "127.0.0.1", "--port", str(port),
             "--db", str(db_path), "--time-scale", str(time_scale), "--log-level", "warning"],
            cwd=REPO_ROOT,
            env={**os.environ, "AGENCY_SANDBOX_TOKEN": token},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sandbox exited: {log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox not ready: {log_path.read_text()}")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory, token: str) -> Iterator[str]:
    # 36,000x: one real second is ten simulated hours, so metrics move within a test.
    db = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite"
    with running_sandbox(db, token, time_scale=36_000.0) as url:
        yield url


def make_request(campaign_id: str, channel: str = "social", n: int = 1, **overrides) -> PublishRequest:
    formats = {"blog": "blog_post", "social": "social_post", "email": "email"}
    values = dict(
        campaign_id=campaign_id,
        item_id=f"{campaign_id}:{channel}:{n}",
        version=1,
        channel=channel,
        format=formats[channel],
        title="" if channel == "social" else "Spring sale: 20% off trail shoes",
        body="Our lightest trail shoe is back. Shop the spring sale before Sunday!",
        budget_cents=5_000,
        idempotency_key=f"{campaign_id}:{campaign_id}:{channel}:{n}:v1",
    )
    values.update(overrides)
    return PublishRequest(**values)


def new_campaign() -> str:
    return f"cmp-{uuid.uuid4().hex[:12]}"


async def test_publish_then_retry_returns_same_post_once(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign)
    async with ChannelClient(sandbox_url, token=token) as client:
        first = await client.publish(req)
        second = await client.publish(req)
        posts = await client.list_posts(campaign)
        deliveries = await client.list_deliveries(campaign)

    assert first.duplicate is False and second.duplicate is True
    assert second.external_id == first.external_id and second.url == first.url
    assert first.item_id == req.item_id
    assert [p["id"] for p in posts] == [first.external_id]
    assert posts[0]["body"] == req.body and posts[0]["budget_cents"] == 5_000
    assert [d["outcome"] for d in deliveries] == ["created", "replayed"]
    # The post's url is a real public page.
    page = httpx.get(first.url, timeout=5)
    assert page.status_code == 200 and "trail shoe" in page.text


async def test_concurrent_duplicates_create_exactly_one_post(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign, channel="blog")
    async with ChannelClient(sandbox_url, token=token) as client:
        results = await asyncio.gather(*(client.publish(req) for _ in range(5)))
        posts = await client.list_posts(campaign)
        deliveries = await client.list_deliveries(campaign)

    assert len({r.external_id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False, True, True, True, True]
    assert len(posts) == 1
    assert sorted(d["outcome"] for d in deliveries) == ["created"] + ["replayed"] * 4


async def test_reused_key_with_different_body_is_rejected(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign)
    async with ChannelClient(sandbox_url, token=token) as client:
        await client.publish(req)
        changed = make_request(campaign, body="A completely different post body.")
        with pytest.raises(ChannelRejected) as info:
            await client.publish(changed)
        posts = await client.list_posts(campaign)

    assert info.value.status_code == 409
    assert info.value.code == "idempotency_key_reused"
    assert len(posts) == 1 and posts[0]["body"] == req.body


@pytest.mark.parametrize(
    ("channel", "overrides", "field"),
    [
        ("social", {"body": "x" * 281}, "body"),
        ("email", {"title": ""}, "title"),
        ("blog", {"title": "   "}, "title"),
        ("blog", {"body": ""}, "body"),
        ("social", {"budget_cents": -1}, "budget_cents"),
        ("email", {"format": "social_post"}, "format"),
    ],
)
async def test_invalid_posts_are_rejected_with_field_names(
    sandbox_url: str, token: str, channel: str, overrides: dict, field: str
) -> None:
    campaign = new_campaign()
    async with ChannelClient(sandbox_url, token=token) as client:
        with pytest.raises(ChannelRejected) as info:
            await client.publish(make_request(campaign, channel=channel, **overrides))
        posts = await client.list_posts(campaign)
        deliveries = await client.list_deliveries(campaign)

    assert info.value.status_code == 422
    assert info.value.code == "validation_failed"
    assert info.value.fields == [field]
    assert posts == []
    assert [(d["outcome"], d["status_code"]) for d in deliveries] == [("rejected", 422)]


async def test_social_post_of_exactly_280_chars_is_accepted(sandbox_url: str, token: str) -> None:
    async with ChannelClient(sandbox_url, token=token) as client:
        result = await client.publish(make_request(new_campaign(), body="y" * 280))
    assert result.duplicate is False


async def test_wrong_or_missing_token_is_401(sandbox_url: str) -> None:
    async with ChannelClient(sandbox_url, token="not-the-token") as client:
        with pytest.raises(ChannelRejected) as info:
            await client.publish(make_request(new_campaign()))
        with pytest.raises(ChannelRejected) as listing:
            await client.list_posts()
    assert info.value.status_code == 401 and info.value.code == "unauthorized"
    assert listing.value.status_code == 401
    anonymous = httpx.get(f"{sandbox_url}/v1/posts", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


def test_protocol_errors_missing_key_and_unknown_channel(sandbox_url: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    payload = {"campaign_id": "c", "item_id": "i", "format": "social_post", "title": "",
               "body": "hello", "budget_cents": 0}
    no_key = httpx.post(f"{sandbox_url}/v1/channels/social/posts", json=payload, headers=auth)
    assert no_key.status_code == 400
    assert no_key.json()["error"]["code"] == "idempotency_key_missing"
    unknown = httpx.post(
        f"{sandbox_url}/v1/channels/fax/posts", json=payload,
        headers={**auth, "Idempotency-Key": "k-fax"},
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_channel"
    missing_post = httpx.get(f"{sandbox_url}/v1/posts/nope/metrics", headers=auth)
    assert missing_post.status_code == 404 and missing_post.json()["error"]["code"] == "not_found"


async def test_metrics_grow_monotonically_within_bounds(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign, channel="social", budget_cents=2_000)
    async with ChannelClient(sandbox_url, token=token) as client:
        published = await client.publish(req)
        readings = []
        for _ in range(6):
            readings.append(
                await client.fetch_metrics(req.item_id, req.channel, published.external_id)
            )
            await asyncio.sleep(0.25)

    for m in readings:
        assert m.external_id == published.external_id and m.item_id == req.item_id
        assert 0 <= m.conversions <= m.clicks <= m.impressions
        assert 0 <= m.spend_cents <= req.budget_cents
    for before, after in zip(readings, readings[1:]):
        assert after.impressions >= before.impressions
        assert after.clicks >= before.clicks
        assert after.conversions >= before.conversions
        assert after.spend_cents >= before.spend_cents
    # ~12 simulated hours passed: a paid social post has reached people and spent money.
    assert readings[-1].impressions > readings[0].impressions
    assert readings[-1].spend_cents > 0


def test_audience_model_is_deterministic_bounded_and_channel_shaped() -> None:
    hours = [h * 3600.0 for h in (0, 0.5, 1, 2, 6, 12, 24, 48, 96, 24 * 7, 24 * 30)]
    for channel in CHANNEL_PROFILES:
        model = audience_model(f"{channel}_abc", channel, "Subject", "Body text. Shop now!", 10_000)
        series = [model.at(t) for t in hours]
        assert series == [model.at(t) for t in hours]  # same time, same numbers
        assert series[0].impressions == 0 and series[0].spend_cents == 0
        for a, b in zip(series, series[1:]):
            assert (b.impressions, b.clicks, b.conversions, b.spend_cents) >= (0, 0, 0, 0)
            assert b.impressions >= a.impressions and b.clicks >= a.clicks
            assert b.conversions >= a.conversions and b.spend_cents >= a.spend_cents
        for m in series:
            assert m.conversions <= m.clicks <= m.impressions
        assert series[-1].spend_cents == 10_000  # the whole budget is paced out, never more

    def settled(channel: str) -> tuple[float, int]:
        rates, reach = [], []
        for i in range(40):
            m = audience_model(f"p{i}", channel, "Title", "Body. Learn more.", 5_000).at(86_400 * 30)
            rates.append(m.clicks / m.impressions)
            reach.append(m.impressions)
        return sum(rates) / len(rates), sum(reach) // len(reach)

    email_ctr, email_reach = settled("email")
    social_ctr, social_reach = settled("social")
    assert email_ctr > social_ctr and social_reach > email_reach
    # Copy matters: a call to action raises clicks for the same post id and budget.
    plain = audience_model("same", "blog", "T", "Our new catalogue is out.", 0).at(86_400 * 30)
    with_cta = audience_model("same", "blog", "T", "Our new catalogue is out. Shop now.", 0)
    assert with_cta.at(86_400 * 30).clicks > plain.clicks


async def test_posts_survive_a_sandbox_restart(tmp_path: Path, token: str) -> None:
    db = tmp_path / "persist.sqlite"
    campaign = new_campaign()
    req = make_request(campaign, channel="email")
    with running_sandbox(db, token) as url:
        async with ChannelClient(url, token=token) as client:
            first = await client.publish(req)
    with running_sandbox(db, token) as url:
        async with ChannelClient(url, token=token) as client:
            posts = await client.list_posts(campaign)
            again = await client.publish(req)
            metrics = await client.fetch_metrics(req.item_id, req.channel, first.external_id)
    assert [p["id"] for p in posts] == [first.external_id]
    assert again.duplicate is True and again.external_id == first.external_id
    assert metrics.impressions >= 0


async def test_injected_outage_after_commit_is_retried_without_duplicates(
    sandbox_url: str, token: str
) -> None:
    campaign = new_campaign()
    req = make_request(campaign, channel="blog")
    auth = {"Authorization": f"Bearer {token}"}
    async with ChannelClient(sandbox_url, token=token) as client:
        armed = httpx.put(
            f"{sandbox_url}/v1/sandbox/faults",
            json={"count": 1, "status_code": 503, "after_commit": True}, headers=auth,
        )
        assert armed.json() == {"pending": 1}
        with pytest.raises(ChannelUnavailable) as info:
            await client.publish(req)  # the post was created but the answer was "lost"
        retried = await client.publish(req)
        posts = await client.list_posts(campaign)
        deliveries = await client.list_deliveries(campaign)

    assert info.value.status_code == 503 and info.value.retry_after_s == 1.0
    assert retried.duplicate is True
    assert [p["id"] for p in posts] == [retried.external_id]
    assert [d["outcome"] for d in deliveries] == ["created", "replayed"]


async def test_injected_outage_before_commit_creates_nothing(sandbox_url: str, token: str) -> None:
    campaign = new_campaign()
    req = make_request(campaign)
    auth = {"Authorization": f"Bearer {token}"}
    httpx.put(f"{sandbox_url}/v1/sandbox/faults",
              json={"count": 1, "status_code": 502}, headers=auth).raise_for_status()
    async with ChannelClient(sandbox_url, token=token) as client:
        with pytest.raises(ChannelUnavailable) as info:
            await client.publish(req)
        result = await client.publish(req)
        deliveries = await client.list_deliveries(campaign)
    assert info.value.status_code == 502
    assert result.duplicate is False
    assert [d["outcome"] for d in deliveries] == ["failed", "created"]


async def test_unreachable_channel_is_unavailable() -> None:
    async with ChannelClient(f"http://127.0.0.1:{free_port()}", token="t", timeout_s=2) as client:
        with pytest.raises(ChannelUnavailable) as info:
            await client.publish(make_request(new_campaign()))
    assert info.value.status_code is None


async def test_silent_channel_times_out_as_unavailable() -> None:
    # A listening socket that never answers: the connection opens, the reply never comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        async with ChannelClient(f"http://127.0.0.1:{port}", token="t", timeout_s=0.5) as client:
            started = time.monotonic()
            with pytest.raises(ChannelUnavailable, match="timed out"):
                await client.fetch_metrics("i", "blog", "blog_x")
            assert time.monotonic() - started < 5
