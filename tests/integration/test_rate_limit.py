"""PostgresRateLimiter against a real PostgreSQL: exhaustion, refill, concurrency, two processes.

The limiter commits its own rows (that is the point: a bucket outlives any request), so each
test uses fresh uuid keys instead of the rolled-back ``db_session``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agency.db.session import create_engine
from agency.security.rate_limit import PostgresRateLimiter, RateLimit, RateLimitExceeded
from agency.settings import REPO_ROOT

pytestmark = pytest.mark.integration

# Slow enough that no token comes back while a test runs: one per 1000 s.
SLOW = 0.001


def _key() -> str:
    return f"test:{uuid.uuid4()}"


@pytest.fixture
def limiter(db_engine: AsyncEngine) -> PostgresRateLimiter:
    return PostgresRateLimiter(db_engine)


async def _age_bucket(engine: AsyncEngine, key: str, seconds: float) -> None:
    """Pretend the bucket was last touched ``seconds`` earlier (instead of sleeping)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE rate_limit_buckets SET updated_at = updated_at - make_interval(secs => :s)"
                " WHERE key = :k"
            ),
            {"s": seconds, "k": key},
        )


async def _stored_tokens(engine: AsyncEngine, key: str) -> float | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(text("SELECT tokens FROM rate_limit_buckets WHERE key = :k"), {"k": key})
        ).scalar_one_or_none()


async def test_first_take_creates_a_full_bucket_minus_one(
    limiter: PostgresRateLimiter, db_engine: AsyncEngine
) -> None:
    key = _key()
    decision = await limiter.take(key, RateLimit(capacity=5, refill_per_s=SLOW))
    assert decision.allowed
    assert (decision.limit, decision.remaining, decision.retry_after_s) == (5, 4, 0)
    assert decision.reset_after_s == 1000  # one token short of full
    assert await _stored_tokens(db_engine, key) == pytest.approx(4.0)


async def test_exhausted_bucket_refuses_with_retry_after(limiter: PostgresRateLimiter) -> None:
    key, limit = _key(), RateLimit(capacity=3, refill_per_s=0.01)  # one token per 100 s
    remaining = [(await limiter.take(key, limit)).remaining for _ in range(3)]
    assert remaining == [2, 1, 0]

    refused = await limiter.take(key, limit)
    assert not refused.allowed
    assert refused.remaining == 0
    assert 99 <= refused.retry_after_s <= 100
    assert 299 <= refused.reset_after_s <= 300


async def test_refused_takes_spend_nothing(limiter: PostgresRateLimiter, db_engine: AsyncEngine) -> None:
    key, limit = _key(), RateLimit(capacity=2, refill_per_s=0.01)
    await limiter.take(key, limit)
    await limiter.take(key, limit)
    first = await limiter.take(key, limit)
    for _ in range(5):
        again = await limiter.take(key, limit)
    # Hammering a closed bucket must not push the client's retry time further out.
    assert not again.allowed and again.retry_after_s <= first.retry_after_s

    await _age_bucket(db_engine, key, 100.5)  # one token's worth
    assert (await limiter.take(key, limit)).allowed


async def test_bucket_refills_with_elapsed_time_up_to_capacity(
    limiter: PostgresRateLimiter, db_engine: AsyncEngine
) -> None:
    key, limit = _key(), RateLimit(capacity=3, refill_per_s=0.01)
    for _ in range(3):
        await limiter.take(key, limit)

    await _age_bucket(db_engine, key, 200.5)  # two tokens' worth
    assert [(await limiter.take(key, limit)).allowed for _ in range(3)] == [True, True, False]

    await _age_bucket(db_engine, key, 10_000)  # far more than capacity's worth: capped at 3
    assert [(await limiter.take(key, limit)).allowed for _ in range(4)] == [True, True, True, False]


async def test_refill_with_real_time(limiter: PostgresRateLimiter) -> None:
    key, limit = _key(), RateLimit(capacity=1, refill_per_s=20.0)  # a token every 50 ms
    assert (await limiter.take(key, limit)).allowed
    assert not (await limiter.take(key, limit)).allowed
    await asyncio.sleep(0.15)
    assert (await limiter.take(key, limit)).allowed


async def test_cost_above_one(limiter: PostgresRateLimiter) -> None:
    key, limit = _key(), RateLimit(capacity=5, refill_per_s=0.5)
    assert (await limiter.take(key, limit, cost=3)).remaining == 2
    refused = await limiter.take(key, limit, cost=3)
    assert not refused.allowed
    assert refused.remaining == 2
    assert refused.retry_after_s == 2  # one token short at 0.5 tokens/s
    assert (await limiter.take(key, limit, cost=2)).allowed

    with pytest.raises(ValueError):
        await limiter.take(key, limit, cost=6)  # could never be satisfied
    with pytest.raises(ValueError):
        await limiter.take(key, limit, cost=0)


async def test_check_raises_when_refused(limiter: PostgresRateLimiter) -> None:
    key, limit = _key(), RateLimit(capacity=1, refill_per_s=SLOW)
    assert (await limiter.check(key, limit)).allowed
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.check(key, limit)
    assert refused.value.key == key
    assert refused.value.decision.retry_after_s >= 999


async def test_a_rolled_back_request_still_spent_its_token(
    limiter: PostgresRateLimiter, db_engine: AsyncEngine
) -> None:
    key, limit = _key(), RateLimit(capacity=2, refill_per_s=SLOW)
    async with db_engine.connect() as request_conn:
        request_tx = await request_conn.begin()
        assert (await limiter.take(key, limit)).allowed
        await request_tx.rollback()
    assert await _stored_tokens(db_engine, key) == pytest.approx(1.0)


async def test_buckets_are_independent_per_key(limiter: PostgresRateLimiter) -> None:
    limit = RateLimit(capacity=1, refill_per_s=SLOW)
    first, second = _key(), _key()
    assert (await limiter.take(first, limit)).allowed
    assert not (await limiter.take(first, limit)).allowed
    assert (await limiter.take(second, limit)).allowed


async def test_a_take_that_waited_for_the_lock_never_moves_the_clock_back(
    limiter: PostgresRateLimiter, db_engine: AsyncEngine
) -> None:
    """A request that read the clock, then queued behind a later writer, must not rewind
    ``updated_at`` (that would count the same interval of refill twice)."""
    key, limit = _key(), RateLimit(capacity=5, refill_per_s=SLOW)
    await limiter.take(key, limit)
    async with db_engine.connect() as holder:
        async with holder.begin():
            await holder.execute(text("SELECT 1 FROM rate_limit_buckets WHERE key = :k FOR UPDATE"), {"k": key})
            queued = asyncio.create_task(limiter.take(key, limit))
            await asyncio.sleep(0.3)
            assert not queued.done()  # it has read its clock and waits for the row lock
            later = (
                await holder.execute(
                    text(
                        "UPDATE rate_limit_buckets SET tokens = 2, updated_at = clock_timestamp()"
                        " WHERE key = :k RETURNING updated_at"
                    ),
                    {"k": key},
                )
            ).scalar_one()
    decision = await queued
    assert decision.allowed and decision.remaining == 1
    async with db_engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT updated_at FROM rate_limit_buckets WHERE key = :k"), {"k": key})
        ).scalar_one()
    assert stored >= later


@pytest_asyncio.fixture(loop_scope="session")
async def wide_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Enough connections that the concurrent takes really contend on the row lock."""
    engine = create_engine(migrated_database_url, pool_size=20, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_concurrent_takes_allow_exactly_the_capacity(wide_engine: AsyncEngine) -> None:
    limiter = PostgresRateLimiter(wide_engine)
    key, limit = _key(), RateLimit(capacity=10, refill_per_s=SLOW)
    # Fresh key: the first takes also race to create the row.
    decisions = await asyncio.gather(*(limiter.take(key, limit) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))
    assert all(d.retry_after_s >= 999 for d in decisions if not d.allowed)


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    from agency.db.session import create_engine
    from agency.security.rate_limit import PostgresRateLimiter, RateLimit

    async def main(url, key, takes, capacity, rate):
        engine = create_engine(url, pool_size=5, max_overflow=0)
        limiter = PostgresRateLimiter(engine)
        limit = RateLimit(capacity=capacity, refill_per_s=rate)
        await limiter.take("warmup:" + key, limit)  # connect before the start signal
        print("ready", flush=True)
        sys.stdin.readline()
        decisions = await asyncio.gather(*(limiter.take(key, limit) for _ in range(takes)))
        await engine.dispose()
        print(json.dumps(sum(d.allowed for d in decisions)), flush=True)

    url, key, takes, capacity, rate = sys.argv[1:]
    asyncio.run(main(url, key, int(takes), int(capacity), float(rate)))
    """
)


async def test_limit_holds_across_two_processes(migrated_database_url: str) -> None:
    """Two API processes (separate interpreters, separate pools) share one bucket."""
    key, capacity, takes_each = _key(), 15, 20
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, migrated_database_url, key, str(takes_each), str(capacity), str(SLOW),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert line.strip() == b"ready", (await worker.stderr.read()).decode()
        for worker in workers:  # both are connected: start them together
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        results = [await asyncio.wait_for(worker.communicate(), timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    allowed = []
    for worker, (stdout, stderr) in zip(workers, results, strict=True):
        assert worker.returncode == 0, stderr.decode()
        allowed.append(json.loads(stdout))
    assert sum(allowed) == capacity


async def test_purge_idle_deletes_only_old_buckets(limiter: PostgresRateLimiter, db_engine: AsyncEngine) -> None:
    limit = RateLimit(capacity=2, refill_per_s=SLOW)
    old, fresh = _key(), _key()
    await limiter.take(old, limit)
    await limiter.take(fresh, limit)
    await _age_bucket(db_engine, old, 7200)

    assert await limiter.purge_idle(timedelta(hours=1)) >= 1
    assert await _stored_tokens(db_engine, old) is None
    assert await _stored_tokens(db_engine, fresh) == pytest.approx(1.0)
    # A purged bucket starts over full, which is what it had refilled to anyway.
    assert (await limiter.take(old, limit)).remaining == 1

    with pytest.raises(ValueError):
        await limiter.purge_idle(timedelta(0))
