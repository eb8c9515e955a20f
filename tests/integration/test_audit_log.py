"""The audit hash chain against a real PostgreSQL: appends, concurrency, tampering, the CLI.

These tests commit rows and tamper with them, so they run in a throwaway database of their
own (created on the session's server and dropped afterwards), never the shared test database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone

import psycopg
import pytest
import pytest_asyncio
from alembic import command
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from agency.db.migrate import alembic_config, downgrade, upgrade_head
from agency.db.repository import CampaignRepository
from agency.db.session import create_engine, session_factory
from agency.security.audit import GENESIS_HASH, ChainVerification, append_audit_event, verify_audit_log
from agency.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def _libpq_conninfo(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _create_database(server_url: str, prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq_conninfo(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(_libpq_conninfo(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def audit_database_url(database_url: str) -> Iterator[str]:
    """A migrated database only these tests write to."""
    name, url = _create_database(database_url, "audit")
    try:
        upgrade_head(url)
        yield url
    finally:
        _drop_database(database_url, name)


@pytest_asyncio.fixture(loop_scope="session")
async def audit_engine(audit_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Engine on the audit database, with an empty chain at genesis for every test."""
    engine = create_engine(audit_database_url, pool_size=3, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE audit_events"))
            await conn.execute(text("DELETE FROM audit_chain_head"))
            await conn.execute(
                text("INSERT INTO audit_chain_head (id, last_id, last_hash, count) VALUES (1, NULL, :genesis, 0)"),
                {"genesis": GENESIS_HASH},
            )
        yield engine
    finally:
        await engine.dispose()


async def _append(engine: AsyncEngine, n: int, actor: str = "system", **extra: object) -> list[int]:
    ids = []
    sessions = session_factory(engine)
    for i in range(n):
        async with sessions() as session, session.begin():
            ids.append(
                await CampaignRepository(session).add_audit_event(
                    actor=actor, action="campaign.requested", subject_type="campaign",
                    subject_id=f"cmp-{actor}-{i}", detail={"i": i}, **extra,
                )
            )
    return ids


async def _verify(engine: AsyncEngine, **kwargs: int) -> ChainVerification:
    async with session_factory(engine)() as session:
        return await verify_audit_log(session, **kwargs)


async def _tamper(engine: AsyncEngine, statement: str, **params: object) -> None:
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        assert result.rowcount == 1


# ---- appends ----------------------------------------------------------------------------
async def test_appended_events_form_a_valid_chain(audit_engine: AsyncEngine) -> None:
    tenant = uuid.uuid4()
    ids = await _append(audit_engine, 3)
    async with session_factory(audit_engine)() as session, session.begin():
        ids.append(
            await CampaignRepository(session).add_audit_event(
                actor="ana@example.com", action="campaign.cancel", subject_type="campaign",
                subject_id="cmp-9", tenant_id=tenant, outcome="denied", request_id="req-42",
            )
        )

    result = await _verify(audit_engine)
    assert (result.ok, result.records_checked, result.bad_record_id) == (True, 4, None)
    async with audit_engine.connect() as conn:
        query = "SELECT id, prev_hash, hash, outcome, request_id FROM audit_events ORDER BY id"
        rows = (await conn.execute(text(query))).all()
        head = (await conn.execute(text("SELECT last_id, last_hash, count FROM audit_chain_head"))).one()
    assert [r.id for r in rows] == ids
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(rows, rows[1:]))
    assert (rows[-1].outcome, rows[-1].request_id) == ("denied", "req-42")
    assert (rows[0].outcome, rows[0].request_id) == ("ok", None)
    assert tuple(head) == (ids[-1], rows[-1].hash, 4)


async def test_small_batches_verify_the_same(audit_engine: AsyncEngine) -> None:
    await _append(audit_engine, 7)
    assert (await _verify(audit_engine, batch_size=2)).records_checked == 7
    assert (await _verify(audit_engine, batch_size=7)).ok


async def test_detail_survives_jsonb_normalisation(audit_engine: AsyncEngine) -> None:
    """jsonb reorders keys and rewrites numbers; the hash must be over what is stored."""
    detail = {"z": 1, "a": {"y": [1.0, 1e20, 0.1, -0], "b": None}, "note": "zoë ✓ \"quoted\"", "big": 2**70}
    async with session_factory(audit_engine)() as session, session.begin():
        await append_audit_event(
            session, actor="system", action="x", subject_type="t", subject_id="1", detail=detail
        )
    assert (await _verify(audit_engine)).ok


async def test_verification_does_not_depend_on_the_session_time_zone(audit_engine: AsyncEngine) -> None:
    async with session_factory(audit_engine)() as session, session.begin():
        await session.execute(text("SET LOCAL TIME ZONE 'Asia/Kathmandu'"))
        await append_audit_event(
            session, actor="system", action="x", subject_type="t", subject_id="1",
            now=datetime(2026, 3, 29, 1, 30, 0, 7, tzinfo=timezone.utc),
        )
    async with session_factory(audit_engine)() as session, session.begin():
        await session.execute(text("SET LOCAL TIME ZONE 'America/St_Johns'"))
        assert (await verify_audit_log(session)).ok


async def test_rolled_back_append_leaves_the_chain_intact(audit_engine: AsyncEngine) -> None:
    await _append(audit_engine, 2)
    async with session_factory(audit_engine)() as session:
        await session.begin()
        await append_audit_event(session, actor="system", action="lost", subject_type="t", subject_id="1")
        await session.rollback()
    await _append(audit_engine, 2)  # the identity sequence now has a gap
    result = await _verify(audit_engine)
    assert (result.ok, result.records_checked) == (True, 4)


async def test_concurrent_appends_extend_one_chain(audit_engine: AsyncEngine) -> None:
    """Two connections appending at once must not fork the chain (advisory lock + head row)."""
    await asyncio.gather(_append(audit_engine, 20, actor="left"), _append(audit_engine, 20, actor="right"))
    result = await _verify(audit_engine)
    assert (result.ok, result.records_checked) == (True, 40)
    async with audit_engine.connect() as conn:
        actors = (await conn.execute(text("SELECT actor FROM audit_events ORDER BY id"))).scalars().all()
    assert sorted(set(actors)) == ["left", "right"]
    # Interleaved, not one writer after the other: the lock really was contended.
    assert actors != sorted(actors)


# ---- tampering --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET detail = '{\"i\": 99}'::jsonb WHERE id = :id",
        "UPDATE audit_events SET actor = 'mallory' WHERE id = :id",
        "UPDATE audit_events SET outcome = 'denied' WHERE id = :id",
        "UPDATE audit_events SET created_at = created_at + interval '1 microsecond' WHERE id = :id",
        "UPDATE audit_events SET tenant_id = gen_random_uuid() WHERE id = :id",
    ],
    ids=["detail", "actor", "outcome", "created_at", "tenant_id"],
)
async def test_altered_row_is_named(audit_engine: AsyncEngine, statement: str) -> None:
    ids = await _append(audit_engine, 5)
    await _tamper(audit_engine, statement, id=ids[2])
    result = await _verify(audit_engine)
    assert (result.ok, result.bad_record_id) == (False, ids[2])
    assert "altered" in result.reason


async def test_deleted_middle_row_is_named_by_the_record_after_the_gap(audit_engine: AsyncEngine) -> None:
    ids = await _append(audit_engine, 5)
    await _tamper(audit_engine, "DELETE FROM audit_events WHERE id = :id", id=ids[2])
    result = await _verify(audit_engine)
    assert (result.ok, result.bad_record_id) == (False, ids[3])
    assert f"record {ids[1]}" in result.reason and "deleted" in result.reason


async def test_deleted_last_row_is_detected_by_the_head(audit_engine: AsyncEngine) -> None:
    ids = await _append(audit_engine, 5)
    await _tamper(audit_engine, "DELETE FROM audit_events WHERE id = :id", id=ids[-1])
    result = await _verify(audit_engine)
    assert (result.ok, result.bad_record_id) == (False, ids[-1])
    assert "missing" in result.reason


async def test_emptied_table_is_detected(audit_engine: AsyncEngine) -> None:
    ids = await _append(audit_engine, 3)
    async with audit_engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_events"))
    result = await _verify(audit_engine)
    assert (result.ok, result.bad_record_id) == (False, ids[-1])


async def test_deleted_head_row_is_detected_and_blocks_appends(audit_engine: AsyncEngine) -> None:
    await _append(audit_engine, 2)
    await _tamper(audit_engine, "DELETE FROM audit_chain_head WHERE id = 1")
    assert not (await _verify(audit_engine)).ok
    with pytest.raises(RuntimeError, match="audit_chain_head is missing"):
        await _append(audit_engine, 1)


async def test_only_one_head_row_can_exist(audit_engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError):
        async with audit_engine.begin() as conn:
            await conn.execute(text("INSERT INTO audit_chain_head VALUES (2, NULL, :h, 0)"), {"h": GENESIS_HASH})


async def test_a_second_record_claiming_the_same_predecessor_is_refused(audit_engine: AsyncEngine) -> None:
    """A fork (two records with one prev_hash) cannot even be stored."""
    await _append(audit_engine, 1)
    with pytest.raises(IntegrityError, match="uq_audit_events_prev_hash"):
        async with audit_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO audit_events (actor, action, subject_type, subject_id, created_at, prev_hash, hash)"
                    " VALUES ('x', 'x', 'x', 'x', now(), :prev, :hash)"
                ),
                {"prev": GENESIS_HASH, "hash": "b" * 64},
            )


# ---- the CLI ----------------------------------------------------------------------------
def _agency_audit_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "AGENCY_ENVIRONMENT": "test"}
    return subprocess.run(
        [sys.executable, "-m", "agency.cli", "audit", "verify"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


async def test_cli_passes_on_a_clean_log_and_names_the_tampered_record(
    audit_engine: AsyncEngine, audit_database_url: str
) -> None:
    ids = await _append(audit_engine, 4)
    clean = await asyncio.to_thread(_agency_audit_verify, audit_database_url)
    assert clean.returncode == 0, clean.stderr
    assert "audit log intact: 4 records" in clean.stdout

    await _tamper(audit_engine, "UPDATE audit_events SET actor = 'mallory' WHERE id = :id", id=ids[1])
    tampered = await asyncio.to_thread(_agency_audit_verify, audit_database_url)
    assert tampered.returncode == 1
    assert f"record {ids[1]}" in tampered.stderr
    assert "Traceback" not in tampered.stderr


async def test_cli_names_the_deleted_last_record(audit_engine: AsyncEngine, audit_database_url: str) -> None:
    ids = await _append(audit_engine, 3)
    await _tamper(audit_engine, "DELETE FROM audit_events WHERE id = :id", id=ids[-1])
    result = await asyncio.to_thread(_agency_audit_verify, audit_database_url)
    assert result.returncode == 1
    assert f"record {ids[-1]}" in result.stderr and "missing" in result.stderr


# ---- the migration ----------------------------------------------------------------------
async def test_migration_chains_existing_records(database_url: str) -> None:
    """Rows written before 0002 are hashed in id order; downgrade removes the chain again."""
    name, url = _create_database(database_url, "audit_backfill")
    try:
        config = alembic_config(url)
        await asyncio.to_thread(command.upgrade, config, "0001")
        with psycopg.connect(_libpq_conninfo(url)) as conn:
            for i in range(3):
                conn.execute(
                    "INSERT INTO audit_events (actor, action, subject_type, subject_id, detail)"
                    " VALUES ('system', 'old', 'campaign', %s, %s::jsonb)",
                    (f"cmp-{i}", '{"b": 2, "a": [1.50, 1e3]}'),
                )
            conn.execute("DELETE FROM audit_events WHERE subject_id = 'cmp-1'")  # a gap before chaining
        await asyncio.to_thread(command.upgrade, config, "0002")

        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            result = await _verify(engine)
            assert (result.ok, result.records_checked) == (True, 2)
            await _append(engine, 1)  # new appends continue the backfilled chain
            assert (await _verify(engine)).records_checked == 3
        finally:
            await engine.dispose()

        await asyncio.to_thread(downgrade, url, "0001")
        with psycopg.connect(_libpq_conninfo(url)) as conn:
            columns = {
                r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_events'"
                )
            }
            head_table = conn.execute("SELECT to_regclass('audit_chain_head')").fetchone()[0]
        assert not columns & {"outcome", "request_id", "prev_hash", "hash"}
        assert head_table is None
    finally:
        _drop_database(database_url, name)
