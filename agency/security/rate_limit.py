"""Token-bucket rate limiting shared by every API replica, stored in PostgreSQL.

A bucket holds up to ``capacity`` tokens (the burst) and refills continuously at
``refill_per_s``; each request takes ``cost`` tokens or is refused. The state of a bucket is
one ``rate_limit_buckets`` row (tokens left at ``updated_at``), updated by one atomic
``INSERT ... ON CONFLICT DO UPDATE`` that:

* reads the time from the database (``clock_timestamp()``), so replicas whose clocks disagree
  still agree on the refill;
* serialises concurrent requests for the same key on the row lock, so N replicas together
  allow exactly the bucket's capacity, not N times it;
* runs in its own short transaction on the limiter's engine, so a request whose own
  transaction rolls back has still spent its token.

A refused take writes nothing: the stored (tokens, updated_at) pair already describes the same
bucket, because refilling later from the older point gives the same tokens as refilling now.

Keys: :func:`tenant_key`, :func:`identity_key`, :func:`login_ip_key`,
:func:`login_account_key`. Headers follow draft-ietf-httpapi-ratelimit-headers:
:func:`rate_limit_headers`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from agency.settings import Settings

# IPv6 clients usually own a whole /64: limiting single addresses would let one attacker
# rotate through 2**64 of them.
IPV6_LOGIN_PREFIX = 64


@dataclass(frozen=True)
class RateLimit:
    """A token bucket's shape: ``capacity`` tokens at most, refilled at ``refill_per_s``."""

    capacity: int
    refill_per_s: float

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("rate limit capacity must be at least 1")
        if not (self.refill_per_s > 0 and math.isfinite(self.refill_per_s)):
            raise ValueError("rate limit refill rate must be positive")

    @classmethod
    def per_minute(cls, per_minute: float, burst: int) -> RateLimit:
        """From the settings' form: sustained requests per minute and burst size."""
        return cls(capacity=burst, refill_per_s=per_minute / 60.0)


@dataclass(frozen=True)
class RateLimits:
    """The limits the API applies, from settings."""

    tenant: RateLimit
    identity: RateLimit
    login: RateLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            tenant=RateLimit.per_minute(settings.rate_limit_tenant_per_minute, settings.rate_limit_tenant_burst),
            identity=RateLimit.per_minute(
                settings.rate_limit_identity_per_minute, settings.rate_limit_identity_burst
            ),
            login=RateLimit.per_minute(settings.rate_limit_login_per_minute, settings.rate_limit_login_burst),
        )


@dataclass(frozen=True)
class Decision:
    """Outcome of one take. Seconds are whole (as the headers carry them), rounded up."""

    allowed: bool
    limit: int
    remaining: int
    # 0 when allowed; otherwise when enough tokens for this request will be back.
    retry_after_s: int
    # When the bucket will be full again if nothing else is taken.
    reset_after_s: int


class RateLimitExceeded(Exception):
    """A take was refused; the API maps it to 429 with :func:`rate_limit_headers`."""

    def __init__(self, key: str, decision: Decision) -> None:
        super().__init__(f"rate limit exceeded, retry after {decision.retry_after_s}s")
        self.key = key
        self.decision = decision


class RateLimiter(Protocol):
    async def take(self, key: str, limit: RateLimit, cost: int = 1) -> Decision: ...


# ---- keys -------------------------------------------------------------------------------------
def tenant_key(tenant_id: uuid.UUID | str) -> str:
    return f"tenant:{tenant_id}"


def identity_key(subject: uuid.UUID | str) -> str:
    return f"identity:{subject}"


def login_ip_key(address: str) -> str:
    """Per client address; IPv6 addresses share their /64, IPv4-mapped IPv6 counts as IPv4."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        # Not an address (a proxy's placeholder, a unix socket): still one bucket per value.
        return f"login:ip:{address.strip().lower()}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"login:ip:{ip.ipv4_mapped}"
        network = ipaddress.IPv6Network((ip, IPV6_LOGIN_PREFIX), strict=False)
        return f"login:ip:{network}"
    return f"login:ip:{ip}"


def login_account_key(email: str) -> str:
    """Per account, whatever the spelling's case; hashed so the table holds no e-mail addresses."""
    normalized = email.strip().casefold()
    return f"login:account:{hashlib.sha256(normalized.encode()).hexdigest()}"


# ---- headers ----------------------------------------------------------------------------------
def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """``RateLimit-Limit/-Remaining/-Reset`` (delta seconds), plus ``Retry-After`` when refused."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_after_s),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after_s)
    return headers


def decision_for(limit: RateLimit, tokens: float, *, allowed: bool, cost: int) -> Decision:
    """The decision given the bucket's tokens after an allowed take, or before a refused one."""
    tokens = min(max(tokens, 0.0), float(limit.capacity))
    reset_after_s = math.ceil((limit.capacity - tokens) / limit.refill_per_s)
    if allowed:
        retry_after_s = 0
    else:
        # At least 1: a client told to retry after 0 seconds would just spin.
        retry_after_s = max(1, math.ceil((cost - tokens) / limit.refill_per_s))
    return Decision(
        allowed=allowed,
        limit=limit.capacity,
        remaining=math.floor(tokens),
        retry_after_s=retry_after_s,
        reset_after_s=reset_after_s,
    )


# ---- PostgreSQL limiter -----------------------------------------------------------------------
# EXCLUDED.updated_at is the clock read when the statement started, before any wait for the
# row lock; GREATEST keeps a bucket's time from going backwards when a request that arrived
# earlier gets the lock later, so no interval of refill is ever counted twice.
_REFILLED = """LEAST(CAST(:capacity AS double precision),
        b.tokens + GREATEST(0, EXTRACT(EPOCH FROM EXCLUDED.updated_at - b.updated_at))
                   * CAST(:rate AS double precision))"""

_TAKE = text(
    f"""
    INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at)
    VALUES (:key, CAST(:capacity AS double precision) - :cost, clock_timestamp())
    ON CONFLICT (key) DO UPDATE
        SET tokens = {_REFILLED} - :cost,
            updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
        WHERE {_REFILLED} >= :cost
    RETURNING b.tokens
    """
)

# Only after a refusal, in the same transaction: the refusing upsert still locked the row, so
# this reads the state the refusal was based on.
_REFILLED_NOW = text(
    """
    SELECT LEAST(CAST(:capacity AS double precision),
                 tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - updated_at))
                          * CAST(:rate AS double precision))
    FROM rate_limit_buckets WHERE key = :key
    """
)

_PURGE = text(
    "DELETE FROM rate_limit_buckets WHERE updated_at < clock_timestamp() - CAST(:older_than AS interval)"
)


async def _take_on(conn: AsyncConnection, key: str, limit: RateLimit, cost: int) -> Decision:
    params = {"key": key, "capacity": limit.capacity, "rate": limit.refill_per_s, "cost": float(cost)}
    tokens_after = (await conn.execute(_TAKE, params)).scalar_one_or_none()
    if tokens_after is not None:
        return decision_for(limit, tokens_after, allowed=True, cost=cost)
    refilled = (await conn.execute(_REFILLED_NOW, params)).scalar_one()
    return decision_for(limit, refilled, allowed=False, cost=cost)


class PostgresRateLimiter:
    """Token buckets in ``rate_limit_buckets``, shared by every process using the database.

    Give it its own engine or the application's; each take uses a connection of its own and
    commits at once, independent of any request transaction.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def take(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        if cost < 1:
            raise ValueError("a take costs at least one token")
        if cost > limit.capacity:
            # Could never succeed; refusing with a Retry-After would make clients wait forever.
            raise ValueError(f"cost {cost} exceeds the bucket capacity {limit.capacity}")
        async with self._engine.begin() as conn:
            return await _take_on(conn, key, limit, cost)

    async def take_each(self, takes: Sequence[tuple[str, RateLimit]]) -> list[Decision]:
        """One token from each bucket in order, in one transaction (one round of commit latency,
        not one per bucket); stops at the first refusal, which is the last decision returned."""
        decisions: list[Decision] = []
        async with self._engine.begin() as conn:
            for key, limit in takes:
                decisions.append(await _take_on(conn, key, limit, 1))
                if not decisions[-1].allowed:
                    break
        return decisions

    async def check(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        """:meth:`take`, raising :class:`RateLimitExceeded` when refused."""
        decision = await self.take(key, limit, cost)
        if not decision.allowed:
            raise RateLimitExceeded(key, decision)
        return decision

    async def purge_idle(self, older_than: timedelta) -> int:
        """Delete buckets untouched for ``older_than``; returns how many.

        Safe when ``older_than`` is at least the longest time any limit takes to refill from
        empty (capacity / refill rate): such a bucket is full again, exactly what a fresh row
        starts as, so deleting it changes no decision. Run it periodically (e.g. hourly).
        """
        if older_than <= timedelta(0):
            raise ValueError("older_than must be positive")
        async with self._engine.begin() as conn:
            result = await conn.execute(_PURGE, {"older_than": older_than})
        return result.rowcount
