"""ProviderHttp and its retry/breaker policy, against httpx.MockTransport (the client alone).

Waits are recorded, not slept: ProviderHttp takes the sleep function and the random source.
"""

from __future__ import annotations

import random

import httpx
import pytest

from agency.integrations.errors import CircuitOpen, ProviderRejected, ProviderUnavailable
from agency.integrations.http import ProviderHttp
from agency.integrations.reliability import CircuitBreaker, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_over(handler, *, retry: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                credentials=None) -> tuple[ProviderHttp, list[httpx.Request], list[float]]:
    """A ProviderHttp whose requests go to ``handler``; returns (client, requests seen, waits)."""
    seen: list[httpx.Request] = []
    waits: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request, len(seen))

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = ProviderHttp(
        "test", "https://api.test", retry=retry, breaker=breaker or CircuitBreaker("test"),
        sleep=sleep, rng=random.Random(7), credentials=credentials,
    )
    # ProviderHttp builds its own pooled httpx client; give it one over the mock transport.
    client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(record))
    return client, seen, waits


def status_sequence(*statuses: int, retry_after: str | None = None):
    """Answer the given statuses in order, then 200 for ever."""
    def handler(request: httpx.Request, n: int) -> httpx.Response:
        status = statuses[n - 1] if n <= len(statuses) else 200
        headers = {"Retry-After": retry_after} if retry_after is not None and status != 200 else {}
        return httpx.Response(status, json={"ok": status == 200}, headers=headers)
    return handler


# ---- Retry-After and jitter ----------------------------------------------------------------
async def test_retry_after_is_a_floor_for_each_wait() -> None:
    client, seen, waits = client_over(status_sequence(429, 429, retry_after="3"))
    response = await client.request("GET", "/things")
    assert response.status_code == 200 and len(seen) == 3
    assert len(waits) == 2
    policy = RetryPolicy()
    for wait in waits:
        # Never shorter than asked; a little jitter on top, bounded.
        assert 3.0 <= wait <= 3.0 + min(1.0, 0.1 * 3.0 + policy.base_delay_s)


async def test_retry_after_beyond_the_in_call_budget_goes_back_to_the_caller() -> None:
    client, seen, waits = client_over(status_sequence(503, retry_after="60"))
    with pytest.raises(ProviderUnavailable) as raised:
        await client.request("GET", "/things")
    # Waiting a minute inside one call would hold the activity; Temporal waits instead.
    assert len(seen) == 1 and waits == []
    assert raised.value.retry_after_s == 60.0 and raised.value.status_code == 503


def test_backoff_jitter_stays_within_the_exponential_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.2, max_delay_s=5.0)
    rng = random.Random(11)
    for attempt in range(1, 8):
        cap = min(policy.max_delay_s, policy.base_delay_s * 2 ** (attempt - 1))
        delays = [policy.delay_s(attempt, None, rng) for _ in range(400)]
        assert all(0.0 <= d <= cap for d in delays)
        # Full jitter: the waits spread over the whole range instead of bunching together.
        assert min(delays) < 0.1 * cap and max(delays) > 0.9 * cap


def test_jitter_on_top_of_retry_after_is_bounded_and_varies() -> None:
    policy = RetryPolicy(base_delay_s=0.2)
    rng = random.Random(3)
    for retry_after in (0.0, 0.05, 2.0, 30.0):
        delays = [policy.delay_s(1, retry_after, rng) for _ in range(200)]
        spread = min(1.0, 0.1 * retry_after + policy.base_delay_s)
        assert all(retry_after <= d <= retry_after + spread for d in delays)
        assert len(set(delays)) > 100


# ---- which requests are retried in-call ----------------------------------------------------
async def test_post_without_idempotency_key_is_not_retried() -> None:
    client, seen, waits = client_over(status_sequence(503))
    with pytest.raises(ProviderUnavailable):
        await client.request("POST", "/things", json={"a": 1})
    assert len(seen) == 1 and waits == []


async def test_post_timeout_is_not_retried() -> None:
    def handler(request: httpx.Request, n: int) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)
    client, seen, _ = client_over(handler)
    with pytest.raises(ProviderUnavailable, match="timed out"):
        await client.request("POST", "/things", json={"a": 1})
    assert len(seen) == 1


async def test_post_with_idempotency_key_is_retried_with_the_same_key() -> None:
    client, seen, waits = client_over(status_sequence(503, 502))
    response = await client.request("POST", "/things", json={"a": 1}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200
    assert [r.headers["Idempotency-Key"] for r in seen] == ["k-1", "k-1", "k-1"]
    assert len(waits) == 2


async def test_post_an_adapter_marks_retry_safe_is_retried() -> None:
    client, seen, _ = client_over(status_sequence(429))
    await client.request("POST", "/search", json={}, retry_safe=True)
    assert len(seen) == 2


async def test_get_gives_up_after_max_attempts() -> None:
    client, seen, waits = client_over(status_sequence(*[500] * 10), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ProviderUnavailable):
        await client.request("GET", "/things")
    assert len(seen) == 3 and len(waits) == 2


async def test_a_refusal_is_not_retried_and_keeps_the_breaker_closed() -> None:
    def handler(request: httpx.Request, n: int) -> httpx.Response:
        return httpx.Response(422, json={"error": {"code": "invalid_email", "message": "bad address"}})
    breaker = CircuitBreaker("test", failure_threshold=1)
    client, seen, _ = client_over(handler, breaker=breaker)
    with pytest.raises(ProviderRejected) as raised:
        await client.request("PUT", "/things/1", json={})
    assert len(seen) == 1
    assert raised.value.code == "invalid_email" and raised.value.status_code == 422
    assert breaker.state == "closed"


async def test_401_refreshes_the_credential_once() -> None:
    class Rotating:
        def __init__(self) -> None:
            self.token = "old"

        async def headers(self) -> dict[str, str]:
            return {"Authorization": f"Bearer {self.token}"}

        async def refresh(self) -> bool:
            changed, self.token = self.token != "new", "new"
            return changed

    def handler(request: httpx.Request, n: int) -> httpx.Response:
        ok = request.headers["Authorization"] == "Bearer new"
        return httpx.Response(200 if ok else 401, json={})
    client, seen, _ = client_over(handler, credentials=Rotating())
    await client.request("POST", "/things", json={})  # a POST too: it was never applied
    assert [r.headers["Authorization"] for r in seen] == ["Bearer old", "Bearer new"]


# ---- circuit breaker -----------------------------------------------------------------------
def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("test", failure_threshold=3, reset_after_s=10.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 4.0
    with pytest.raises(CircuitOpen) as raised:
        breaker.before_call()
    assert raised.value.retry_after_s == pytest.approx(6.0)

    clock.now += 6.0
    assert breaker.state == "half_open"
    breaker.before_call()  # the one trial call
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second caller waits for the trial's outcome
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_failed_trial_reopens_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("test", failure_threshold=3, reset_after_s=10.0, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 9.0
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 1.0
    assert breaker.state == "half_open"


async def test_open_breaker_fails_fast_without_sending() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("test", failure_threshold=3, reset_after_s=10.0, clock=clock)
    healthy = False

    def handler(request: httpx.Request, n: int) -> httpx.Response:
        return httpx.Response(200 if healthy else 503, json={})
    client, seen, _ = client_over(handler, breaker=breaker, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ProviderUnavailable) as first:
        await client.request("GET", "/things")
    assert not isinstance(first.value, CircuitOpen) and len(seen) == 3
    assert breaker.state == "open"

    with pytest.raises(CircuitOpen):
        await client.request("GET", "/things")
    assert len(seen) == 3  # nothing went out

    clock.now += 10.0
    healthy = True
    response = await client.request("GET", "/things")  # the half-open trial
    assert response.status_code == 200 and len(seen) == 4
    assert breaker.state == "closed"


# ---- adapters' reading of provider answers -------------------------------------------------
async def test_resend_conflicts_split_into_transient_and_final() -> None:
    from agency.integrations.email import OutgoingEmail, ResendEmailSender
    from agency.integrations.http import bearer

    answers = iter([
        httpx.Response(409, json={"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "in progress"}),
        httpx.Response(200, json={"id": "e-1"}),
        httpx.Response(409, json={"statusCode": 409, "name": "invalid_idempotent_request", "message": "other payload"}),
    ])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    async def no_wait(seconds: float) -> None:
        return None

    sender = ResendEmailSender("https://resend.test", bearer("re_x"))
    sender.http._http = httpx.AsyncClient(base_url="https://resend.test", transport=httpx.MockTransport(handler))
    sender.http._sleep = no_wait
    email = OutgoingEmail(sender="a@agency.example", to=("b@audience.example",), subject="s", text="t",
                          idempotency_key="welcome/1")
    # In flight elsewhere: transient, retried in-call (the key makes that safe) and answered.
    assert (await sender.send(email)).id == "e-1"
    with pytest.raises(ProviderRejected) as raised:
        await sender.send(email)
    assert raised.value.code == "invalid_idempotent_request"
    assert [r.headers["Idempotency-Key"] for r in seen] == ["welcome/1"] * 3


def test_x_timeline_text_is_compared_with_links_expanded() -> None:
    from agency.integrations.social import _same_text, _x_tweet_text

    tweet = {"id": "1", "text": "Spring is here https://t.co/abc  ",
             "entities": {"urls": [{"url": "https://t.co/abc", "expanded_url": "https://shop.example/spring"}]}}
    assert _same_text(_x_tweet_text(tweet), "Spring is here https://shop.example/spring")
    assert not _same_text(_x_tweet_text(tweet), "Spring is here https://shop.example/summer")
