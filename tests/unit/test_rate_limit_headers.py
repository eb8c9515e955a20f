"""Rate-limit arithmetic, headers, keys and the 429 error, without a database."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agency.security.rate_limit import (
    Decision,
    RateLimit,
    RateLimits,
    decision_for,
    identity_key,
    login_account_key,
    login_ip_key,
    rate_limit_headers,
    tenant_key,
)
from agency.settings import Settings
from api.errors import RateLimited, install_error_handlers


def test_allowed_decision_headers() -> None:
    decision = Decision(allowed=True, limit=10, remaining=7, retry_after_s=0, reset_after_s=18)
    assert rate_limit_headers(decision) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "18",
    }


def test_refused_decision_adds_retry_after() -> None:
    decision = Decision(allowed=False, limit=5, remaining=0, retry_after_s=6, reset_after_s=30)
    headers = rate_limit_headers(decision)
    assert headers["Retry-After"] == "6"
    assert headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Reset"] == "30"


def test_decision_after_an_allowed_take() -> None:
    limit = RateLimit.per_minute(per_minute=60, burst=10)  # 1 token/s
    decision = decision_for(limit, 6.4, allowed=True, cost=1)
    assert (decision.remaining, decision.retry_after_s, decision.reset_after_s) == (6, 0, 4)  # 3.6 s -> 4


def test_decision_for_a_refusal_rounds_retry_up_and_never_to_zero() -> None:
    limit = RateLimit(capacity=5, refill_per_s=0.5)
    refused = decision_for(limit, 0.25, allowed=False, cost=1)
    assert (refused.remaining, refused.retry_after_s, refused.reset_after_s) == (0, 2, 10)  # 1.5 s -> 2
    # Refilled by the time the refusal was reported: still tell the client to wait a moment.
    assert decision_for(limit, 1.0, allowed=False, cost=1).retry_after_s == 1
    assert decision_for(limit, 2.0, allowed=False, cost=3).retry_after_s == 2


def test_decision_clamps_float_noise() -> None:
    limit = RateLimit(capacity=3, refill_per_s=1.0)
    assert decision_for(limit, -1e-12, allowed=True, cost=1).remaining == 0
    full = decision_for(limit, 3.0000000001, allowed=True, cost=1)
    assert (full.remaining, full.reset_after_s) == (3, 0)


def test_rate_limit_from_settings() -> None:
    settings = Settings(
        rate_limit_tenant_per_minute=120,
        rate_limit_tenant_burst=20,
        rate_limit_identity_per_minute=30,
        rate_limit_identity_burst=6,
        rate_limit_login_per_minute=6,
        rate_limit_login_burst=3,
    )
    limits = RateLimits.from_settings(settings)
    assert limits.tenant == RateLimit(capacity=20, refill_per_s=2.0)
    assert limits.identity == RateLimit(capacity=6, refill_per_s=0.5)
    assert limits.login == RateLimit(capacity=3, refill_per_s=0.1)


@pytest.mark.parametrize(
    ("capacity", "rate"), [(0, 1.0), (5, 0.0), (5, -1.0), (5, float("inf")), (5, float("nan"))]
)
def test_invalid_limits_are_rejected(capacity: int, rate: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(capacity=capacity, refill_per_s=rate)


def test_keys() -> None:
    assert tenant_key("t1") == "tenant:t1"
    assert identity_key("svc-9") == "identity:svc-9"


def test_login_ip_key_normalises_addresses() -> None:
    assert login_ip_key("203.0.113.7") == "login:ip:203.0.113.7"
    assert login_ip_key(" 203.0.113.7 ") == login_ip_key("::ffff:203.0.113.7")  # IPv4-mapped
    # Rotating through one's own /64 does not escape the limit; another /64 is another bucket.
    assert login_ip_key("2001:db8:0:1::1") == login_ip_key("2001:0db8:0000:0001:ffff:ffff:ffff:ffff")
    assert login_ip_key("2001:db8:0:1::1") == "login:ip:2001:db8:0:1::/64"
    assert login_ip_key("2001:db8:0:2::1") != login_ip_key("2001:db8:0:1::1")
    assert login_ip_key("unknown") == "login:ip:unknown"


def test_login_account_key_ignores_case_and_hides_the_address() -> None:
    key = login_account_key("Alice@Example.com")
    assert key == login_account_key("  alice@example.COM ")
    assert key != login_account_key("bob@example.com")
    assert key.startswith("login:account:")
    assert "alice" not in key.lower()


def test_rate_limited_error_is_a_429_with_the_headers() -> None:
    limit = RateLimit(capacity=5, refill_per_s=0.5)
    decision = decision_for(limit, 0.0, allowed=False, cost=1)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimited(
            "too many requests", retry_after_s=decision.retry_after_s, headers=rate_limit_headers(decision)
        )

    response = TestClient(app).get("/limited")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.headers["RateLimit-Limit"] == "5"
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reset"] == "10"
    assert response.json() == {
        "error": {"code": "rate_limited", "message": "too many requests", "details": {"retry_after_s": 2}}
    }
