"""The publishing router and its adapters against the sandbox's provider faces, over real HTTP.

Fault tests (429 storm, 5xx burst, timeout, answer lost after commit) for X, LinkedIn, Resend
and the generic channel: after the router, plus an activity-style retry whenever a call raised
ProviderUnavailable, every item exists exactly once on the provider side. The counts come from
the sandbox: its store's posts and delivery log and the face's request counters.

The sandbox is the session's shared one: every test uses its own campaign id and unique copy,
and clears the faults it sets.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import httpx
import pytest

from agency.channels import ChannelClient
from agency.contracts import PublishRequest, PublishResult
from agency.integrations.email import OutgoingEmail, ResendEmailSender
from agency.integrations.errors import ProviderAuthFailed, ProviderRejected, ProviderUnavailable
from agency.integrations.http import bearer
from agency.integrations.publishing import PublishingRouter, build_publishing_router
from agency.integrations.reliability import RetryPolicy
from agency.integrations.social import LinkedInPublisher, SocialPost, XPublisher, little_text_escape
from agency.settings import Settings
from tests.integration.conftest import SANDBOX_TOKEN, Sandbox

AUTHOR = "urn:li:organization:424242"
CLIENT_TIMEOUT_S = 1.0
SLOW_ANSWER_S = 2.5  # longer than CLIENT_TIMEOUT_S: the face applies it, the client is gone
# Short in-call retries keep a 429 storm from outliving one call, as in production.
RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.02, max_delay_s=0.2, max_elapsed_s=5.0)


# ---- helpers --------------------------------------------------------------------------------
def admin(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)


@contextmanager
def face_faults(sandbox: Sandbox, face: str, rules: list[dict]):
    with admin(sandbox) as client:
        client.delete(f"/_sandbox/requests/{face}").raise_for_status()
        client.put(f"/_sandbox/faults/{face}", json={"rules": rules}).raise_for_status()
        try:
            yield
        finally:
            client.delete(f"/_sandbox/faults/{face}").raise_for_status()


@contextmanager
def channel_faults(sandbox: Sandbox, count: int, status_code: int, after_commit: bool = False):
    with admin(sandbox) as client:
        client.put("/v1/sandbox/faults", json={"count": count, "status_code": status_code,
                                               "after_commit": after_commit}).raise_for_status()
        try:
            yield
        finally:
            client.put("/v1/sandbox/faults", json={"count": 0}).raise_for_status()


def counters(sandbox: Sandbox, face: str) -> dict[str, int]:
    with admin(sandbox) as client:
        return client.get(f"/_sandbox/requests/{face}").json()["counts"]


def posts_of(sandbox: Sandbox, campaign_id: str) -> list[dict]:
    with admin(sandbox) as client:
        return client.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]


def publish_deliveries(sandbox: Sandbox, campaign_id: str) -> list[dict]:
    with admin(sandbox) as client:
        rows = client.get("/v1/deliveries", params={"campaign_id": campaign_id}).json()["data"]
    return [r for r in rows if r["operation"] == "publish"]


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for server-side state the test caused (a slowed request finishing), then go on."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


async def publish_like_an_activity(router: PublishingRouter, req: PublishRequest, attempts: int = 12) -> PublishResult:
    """What Temporal does with the publish activity: call again with the same request while it
    raises ProviderUnavailable. Retry-After is honoured in-call by ProviderHttp (unit-tested);
    here the wait between activity attempts is kept short, only the outcome matters."""
    for attempt in range(1, attempts + 1):
        try:
            return await router.publish(req)
        except ProviderUnavailable as exc:
            if attempt == attempts:
                raise
            await asyncio.sleep(min(exc.retry_after_s or 0.05, 0.2))
    raise AssertionError("unreachable")


@asynccontextmanager
async def router_for(sandbox: Sandbox, *, via: str | None = None, timeout_s: float = 10.0) -> AsyncIterator[PublishingRouter]:
    """The router with every adapter at the sandbox (or at ``via``, a proxy in front of it)."""
    token = bearer(SANDBOX_TOKEN)
    base = via or sandbox.url
    channel = ChannelClient(base, token=SANDBOX_TOKEN, timeout_s=timeout_s)
    router = PublishingRouter(
        channel,
        x=XPublisher(f"{base}/x", token, timeout_s=timeout_s, retry=RETRY, correlate=True),
        linkedin=LinkedInPublisher(f"{base}/linkedin", token, author=AUTHOR, timeout_s=timeout_s,
                                   retry=RETRY, correlate=True),
        email=ResendEmailSender(f"{base}/resend", token, timeout_s=timeout_s, retry=RETRY, correlate=True),
        email_from="Agency <campaigns@agency.example>",
        email_to=["list@audience.example"],
    )
    try:
        yield router
    finally:
        await router.aclose()
        await channel.aclose()


@dataclass(frozen=True)
class Route:
    face: str  # the sandbox face name ("channel" for the generic protocol)
    channel: str
    format: str
    create_path: str  # the create request's path on the face, as counted


ROUTES = {
    "x": Route("x", "social", "x_post", "/x/2/tweets"),
    "linkedin": Route("linkedin", "social", "linkedin_post", "/linkedin/rest/posts"),
    "resend": Route("resend", "email", "email", "/resend/emails"),
    "channel": Route("channel", "blog", "blog_post", "/v1/channels/blog/posts"),
}


def request_for(route: Route, campaign_id: str, item: int, budget_cents: int = 2_500) -> PublishRequest:
    unique = uuid.uuid4().hex[:10]
    item_id = f"item-{item}"
    return PublishRequest(
        campaign_id=campaign_id, item_id=item_id, version=1, channel=route.channel, format=route.format,
        title=f"Spring launch {unique}",
        body=f"Our spring range is here ({unique}, #{item}). Shop now: https://shop.example/spring",
        budget_cents=budget_cents, idempotency_key=f"{campaign_id}:{item_id}:v1",
    )


def assert_exactly_once(sandbox: Sandbox, route: Route, campaign_id: str, reqs: list[PublishRequest],
                        results: list[PublishResult]) -> None:
    posts = posts_of(sandbox, campaign_id)
    per_item = Counter(p["item_id"] for p in posts)
    assert per_item == {r.item_id: 1 for r in reqs}, posts
    by_item = {p["item_id"]: p for p in posts}
    for req, result in zip(reqs, results):
        post = by_item[req.item_id]
        assert post["id"] == result.external_id
        assert post["format"] == route.format and post["channel"] == route.channel
        # The paid budget reached the post once (set by the promote step for provider posts).
        assert post["budget_cents"] == req.budget_cents
    created = Counter(d["item_id"] for d in publish_deliveries(sandbox, campaign_id) if d["outcome"] == "created")
    assert created == {r.item_id: 1 for r in reqs}


def sandbox_port(sandbox: Sandbox) -> int:
    return int(sandbox.url.rsplit(":", 1)[1])


def create_counts(sandbox: Sandbox, route: Route) -> Counter:
    """Create requests the face received, by status."""
    by_status: Counter = Counter()
    for key, n in counters(sandbox, route.face).items():
        method, path, status = key.split(" ")
        # Requests a fault answered are counted by raw path, routed ones by route template
        # (without the face's prefix); both name the same endpoint.
        if method == "POST" and f"/{route.face}{path.removeprefix(f'/{route.face}')}" == route.create_path:
            by_status[int(status)] += n
    return by_status


class AnswerDelayingProxy:
    """A TCP proxy that forwards requests at once but holds back the first connection's
    answer: the channel applies the request and the client times out before it hears so."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self._upstream_port = upstream_port
        self._delay_s = delay_s
        self._delayed_left = 1
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self.port = 0

    async def __aenter__(self) -> AnswerDelayingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        delay = self._delay_s if self._delayed_left > 0 else 0.0
        self._delayed_left -= 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, hold_s: float) -> None:
            try:
                while chunk := await src.read(65536):
                    if hold_s:
                        await asyncio.sleep(hold_s)
                        hold_s = 0.0
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer, 0.0), pipe(up_reader, writer, delay))
        except asyncio.CancelledError:
            up_writer.close()
            writer.close()


# ---- the fault matrix -----------------------------------------------------------------------
# The timeout case holds the answer back in a TCP proxy (AnswerDelayingProxy) rather than with
# the faces' ``delay_s`` rule: that rule sleeps before the face reads the request body, so a
# client that gives up disconnects first and the face never applies the request.
FACE_FAULTS = {
    "429_storm": [{"count": 6, "status_code": 429, "retry_after_s": 0.05, "methods": ["POST"]}],
    "5xx_burst": [{"count": 1, "status_code": 500, "methods": ["POST"]},
                  {"count": 1, "status_code": 502, "methods": ["POST"]},
                  {"count": 1, "status_code": 503, "methods": ["POST"]}],
    "timeout": [],
    "lost_after_commit": [{"count": 1, "status_code": 503, "after_commit": True, "methods": ["POST"]}],
}


@pytest.mark.parametrize("fault", sorted(FACE_FAULTS))
@pytest.mark.parametrize("provider", ["x", "linkedin", "resend"])
async def test_provider_faults_publish_every_item_exactly_once(sandbox: Sandbox, provider: str, fault: str) -> None:
    route = ROUTES[provider]
    campaign_id = f"fault-{provider}-{fault}-{uuid.uuid4().hex[:8]}"
    reqs = [request_for(route, campaign_id, i) for i in (1, 2)]
    with face_faults(sandbox, route.face, FACE_FAULTS[fault]):
        if fault == "timeout":
            async with AnswerDelayingProxy(sandbox_port(sandbox), SLOW_ANSWER_S) as proxy:
                async with router_for(sandbox, via=proxy.url, timeout_s=CLIENT_TIMEOUT_S) as router:
                    results = [await publish_like_an_activity(router, req) for req in reqs]
            # The first request was applied although its answer never arrived; the retry
            # found (or, if it overtook it, made) the post: two deliveries, one post.
            await eventually(lambda: len([d for d in publish_deliveries(sandbox, campaign_id)
                                          if d["item_id"] == "item-1"]) >= 2,
                             "the held-back request and its retry both reached the provider")
        else:
            async with router_for(sandbox) as router:
                results = [await publish_like_an_activity(router, req) for req in reqs]
    assert_exactly_once(sandbox, route, campaign_id, reqs, results)

    statuses = create_counts(sandbox, route)
    if fault == "429_storm":
        assert statuses[429] == 6 and statuses[201 if provider != "resend" else 200] == 2, statuses
        assert not any(r.duplicate for r in results)
    elif fault == "5xx_burst":
        assert statuses[500] == statuses[502] == statuses[503] == 1, statuses
        assert not any(r.duplicate for r in results)
    elif fault == "lost_after_commit":
        # The first item's post was created, its answer replaced by 503; the retry found it.
        assert statuses[503] == 1, statuses
        assert [r.duplicate for r in results] == [True, False]
    else:
        # Two posts created; the held-back request and its retry met once as a duplicate
        # (a 403/422 refusal on the networks, a 200 replay on Resend).
        expected = {"x": {201: 2, 403: 1}, "linkedin": {201: 2, 422: 1}, "resend": {200: 3}}[provider]
        assert statuses == expected, statuses
        assert not results[1].duplicate


@pytest.mark.parametrize("fault", ["429_storm", "5xx_burst", "lost_after_commit"])
async def test_channel_faults_publish_every_item_exactly_once(sandbox: Sandbox, fault: str) -> None:
    route = ROUTES["channel"]
    campaign_id = f"fault-channel-{fault}-{uuid.uuid4().hex[:8]}"
    reqs = [request_for(route, campaign_id, i) for i in (1, 2)]
    count, status, after_commit = {"429_storm": (6, 429, False), "5xx_burst": (3, 503, False),
                                   "lost_after_commit": (1, 503, True)}[fault]
    with channel_faults(sandbox, count, status, after_commit):
        async with router_for(sandbox) as router:
            results = [await publish_like_an_activity(router, req) for req in reqs]
    assert_exactly_once(sandbox, route, campaign_id, reqs, results)
    outcomes = Counter(d["outcome"] for d in publish_deliveries(sandbox, campaign_id))
    if after_commit:
        assert outcomes == {"created": 2, "replayed": 1}
        assert [r.duplicate for r in results] == [True, False]
    else:
        assert outcomes == {"created": 2, "failed": count}


async def test_channel_timeout_publishes_every_item_exactly_once(sandbox: Sandbox) -> None:
    route = ROUTES["channel"]
    campaign_id = f"fault-channel-timeout-{uuid.uuid4().hex[:8]}"
    reqs = [request_for(route, campaign_id, i) for i in (1, 2)]
    async with AnswerDelayingProxy(sandbox_port(sandbox), SLOW_ANSWER_S) as proxy:
        async with router_for(sandbox, via=proxy.url, timeout_s=CLIENT_TIMEOUT_S) as router:
            with pytest.raises(ProviderUnavailable):
                await router.publish(reqs[0])
            # The channel applied the request the client never heard back about.
            await eventually(lambda: any(d["item_id"] == "item-1" for d in publish_deliveries(sandbox, campaign_id)),
                             "the timed-out request reached the channel")
            results = [await publish_like_an_activity(router, req) for req in reqs]
    assert_exactly_once(sandbox, route, campaign_id, reqs, results)
    assert [r.duplicate for r in results] == [True, False]
    assert Counter(d["outcome"] for d in publish_deliveries(sandbox, campaign_id)) == {"created": 2, "replayed": 1}


# ---- what the faces and adapters promise beyond faults --------------------------------------
async def test_provider_posts_have_metrics_budgets_and_deliveries(sandbox: Sandbox) -> None:
    campaign_id = f"flow-{uuid.uuid4().hex[:8]}"
    reqs = [request_for(ROUTES[p], campaign_id, i) for i, p in enumerate(["x", "linkedin", "resend", "channel"], 1)]
    async with router_for(sandbox) as router:
        assert [router.route(r) for r in reqs] == ["x", "linkedin", "resend", "channel"]
        results = [await router.publish(r) for r in reqs]
        # A later activity attempt of an item already published gets the same post back.
        again = [await router.publish(r) for r in reqs]
    assert [r.external_id for r in again] == [r.external_id for r in results]
    assert all(r.duplicate for r in again) and not any(r.duplicate for r in results)

    with admin(sandbox) as client:
        for req, result in zip(reqs, results):
            metrics = client.get(f"/v1/posts/{result.external_id}/metrics")
            assert metrics.status_code == 200, metrics.text
            assert metrics.json()["budget_cents"] == req.budget_cents
            changed = client.patch(f"/v1/posts/{result.external_id}", json={"budget_cents": req.budget_cents * 2},
                                   headers={"Idempotency-Key": f"{req.idempotency_key}:r1"})
            assert changed.status_code == 200 and changed.json()["budget_cents"] == req.budget_cents * 2
    posts = {p["item_id"]: p for p in posts_of(sandbox, campaign_id)}
    assert {i: p["format"] for i, p in posts.items()} == {
        "item-1": "x_post", "item-2": "linkedin_post", "item-3": "email", "item-4": "blog_post"}
    # X and LinkedIn keep our copy as the reader sees it (LinkedIn's escaping undone).
    assert posts["item-1"]["body"] == reqs[0].body and posts["item-2"]["body"] == reqs[1].body
    assert posts["item-3"]["title"] == reqs[2].title
    outcomes = Counter((d["item_id"], d["outcome"], d["status_code"]) for d in publish_deliveries(sandbox, campaign_id))
    assert outcomes == {
        ("item-1", "created", 201): 1, ("item-1", "rejected", 403): 1,
        ("item-2", "created", 201): 1, ("item-2", "rejected", 422): 1,
        ("item-3", "created", 201): 1, ("item-3", "replayed", 200): 1,
        ("item-4", "created", 201): 1, ("item-4", "replayed", 200): 1,
    }
    assert results[0].url.endswith(f"/status/{results[0].external_id}")
    assert results[1].external_id.startswith("urn:li:share:")


async def test_x_recovers_a_duplicate_from_the_user_timeline(sandbox: Sandbox) -> None:
    text = f"Only once {uuid.uuid4().hex}"
    publisher = XPublisher(f"{sandbox.url}/x", bearer(SANDBOX_TOKEN), retry=RETRY)
    try:
        first = await publisher.publish(SocialPost(text, "k1"))
        # Newer tweets push it down the timeline; the lookup still finds it.
        for i in range(3):
            await publisher.publish(SocialPost(f"{text} later {i}", f"k-later-{i}"))
        again = await publisher.publish(SocialPost(text, "k1"))
        user_id = await publisher.user_id()
    finally:
        await publisher.aclose()
    assert again.id == first.id and again.duplicate and not first.duplicate
    with admin(sandbox) as client:
        raw = client.post("/x/2/tweets", json={"text": text})
        assert raw.status_code == 403
        assert raw.json()["detail"] == "You are not allowed to create a Tweet with duplicate content."
        timeline = client.get(f"/x/2/users/{user_id}/tweets", params={"max_results": 100}).json()["data"]
    assert [t["id"] for t in timeline if t["text"] == text] == [first.id]


async def test_linkedin_escapes_little_text_and_names_the_duplicate(sandbox: Sandbox) -> None:
    text = f"Launch (day {uuid.uuid4().hex[:6]}) #spring @team_a [beta] *new* <3"
    publisher = LinkedInPublisher(f"{sandbox.url}/linkedin", bearer(SANDBOX_TOKEN), author=AUTHOR, retry=RETRY)
    try:
        first = await publisher.publish(SocialPost(text, "k1"))
        again = await publisher.publish(SocialPost(text, "k1"))
        # The fallback when a refusal does not name the post: the author's recent posts.
        found = await publisher._find_recent(little_text_escape(text))
    finally:
        await publisher.aclose()
    assert again.id == first.id == found and again.duplicate
    headers = {"LinkedIn-Version": "202510", "X-Restli-Protocol-Version": "2.0.0"}
    with admin(sandbox) as client:
        stored = client.get(f"/linkedin/rest/posts/{first.id.replace(':', '%3A')}", headers=headers)
        assert stored.status_code == 200, stored.text
        assert stored.json()["commentary"] == little_text_escape(text)
        assert stored.json()["author"] == AUTHOR
        no_version = client.post("/linkedin/rest/posts", json={})
        assert no_version.status_code == 400 and no_version.json()["code"] == "VERSION_MISSING"


@pytest.mark.parametrize("provider", ["x", "linkedin", "resend", "channel"])
async def test_concurrent_publishes_of_one_item_create_one_post(sandbox: Sandbox, provider: str) -> None:
    route = ROUTES[provider]
    campaign_id = f"concurrent-{provider}-{uuid.uuid4().hex[:8]}"
    req = request_for(route, campaign_id, 1)
    async with router_for(sandbox) as router:
        results = await asyncio.gather(*[router.publish(req) for _ in range(4)])
    assert len({r.external_id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert_exactly_once(sandbox, route, campaign_id, [req], [results[0]])


async def test_resend_idempotency_key_semantics(sandbox: Sandbox) -> None:
    key = f"welcome/{uuid.uuid4().hex}"
    sender = ResendEmailSender(f"{sandbox.url}/resend", bearer(SANDBOX_TOKEN), retry=RETRY)
    email = OutgoingEmail(sender="Agency <campaigns@agency.example>", to=("list@audience.example",),
                          subject="Welcome", text="Hello there", idempotency_key=key, campaign_id="c-1", item_id="i-1")
    try:
        first = await sender.send(email)
        again = await sender.send(email)
        with pytest.raises(ProviderRejected) as conflict:
            await sender.send(OutgoingEmail(**{**email.__dict__, "subject": "Welcome, changed"}))
    finally:
        await sender.aclose()
    assert again.id == first.id and again.duplicate and not first.duplicate
    assert conflict.value.status_code == 409 and conflict.value.code == "invalid_idempotent_request"
    with admin(sandbox) as client:
        stored = client.get(f"/resend/emails/{first.id}").json()
        assert stored["subject"] == "Welcome" and stored["to"] == ["list@audience.example"]
        assert {"name": "campaign_id", "value": "c-1"} in stored["tags"]
        too_long = client.post("/resend/emails", headers={"Idempotency-Key": "k" * 257},
                               json={"from": "a@b.example", "to": "c@d.example", "subject": "s", "text": "t"})
        assert too_long.status_code == 400 and too_long.json()["name"] == "invalid_idempotency_key"


@pytest.mark.parametrize("provider", ["x", "linkedin", "resend"])
async def test_each_face_checks_its_own_credentials(sandbox: Sandbox, provider: str) -> None:
    route = ROUTES[provider]
    with admin(sandbox) as client:
        client.put(f"/_sandbox/credentials/{provider}", json={"tokens": ["rotated-token"]}).raise_for_status()
    try:
        async with router_for(sandbox) as router:
            with pytest.raises(ProviderAuthFailed):
                await router.publish(request_for(route, f"auth-{uuid.uuid4().hex[:8]}", 1))
        other = "x" if provider != "x" else "linkedin"
        async with router_for(sandbox) as router:
            # Only this face's credentials changed.
            result = await router.publish(request_for(ROUTES[other], f"auth-{uuid.uuid4().hex[:8]}", 1))
            assert result.external_id
    finally:
        with admin(sandbox) as client:
            client.put(f"/_sandbox/credentials/{provider}", json={"tokens": [SANDBOX_TOKEN]}).raise_for_status()


async def test_channel_refusal_becomes_provider_rejected(sandbox: Sandbox) -> None:
    req = request_for(ROUTES["channel"], f"reject-{uuid.uuid4().hex[:8]}", 1)
    async with router_for(sandbox) as router:
        await router.publish(req)
        with pytest.raises(ProviderRejected) as refused:
            await router.publish(PublishRequest(**{**req.__dict__, "body": "a different body"}))
    assert refused.value.provider == "channel" and refused.value.code == "idempotency_key_reused"


async def test_router_built_from_settings_uses_the_sandbox_faces(sandbox: Sandbox, tmp_path) -> None:
    settings = Settings(environment="test", data_dir=tmp_path, channel_base_url=sandbox.url,
                        channel_token=SANDBOX_TOKEN, integration_timeout_s=10.0)
    campaign_id = f"settings-{uuid.uuid4().hex[:8]}"
    async with ChannelClient(settings.channel_url, token=SANDBOX_TOKEN) as channel:
        router = build_publishing_router(settings, channel, linkedin_author=AUTHOR,
                                         email_from="campaigns@agency.example", email_to=["list@audience.example"])
        try:
            result = await router.publish(request_for(ROUTES["x"], campaign_id, 1))
        finally:
            await router.aclose()
    assert [p["id"] for p in posts_of(sandbox, campaign_id)] == [result.external_id]
