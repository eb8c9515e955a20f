"""The decision agents' API: market history upload, ROI reports on demand, reallocation decisions.

Bad input gets a 4xx with a machine-readable body; tenants never see each other's data."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest

from conftest import api_client, running_workers

pytestmark = pytest.mark.integration


def week(day: str, social: int = 10_000, email: int = 5_000, conversions: float = 40.0) -> dict:
    return {"week_start": day, "spend_cents": {"social": social, "email": email}, "conversions": conversions}


async def test_market_history_upload_validates_and_is_per_tenant(make_settings):
    settings = make_settings()
    tenant = f"hist-{uuid.uuid4().hex[:8]}"
    async with api_client(settings, tenant=tenant) as api:
        # A Wednesday is filed under its week's Monday; a second upload of that week replaces it.
        stored = await api.put("/v1/market/weeks", json={"weeks": [week("2026-11-04"), week("2026-11-09")]})
        assert stored.status_code == 200, stored.text
        assert stored.json() == {"stored": 2, "total_weeks": 2}
        replaced = await api.put("/v1/market/weeks", json={"weeks": [week("2026-11-02", conversions=55.5)]})
        assert replaced.json() == {"stored": 1, "total_weeks": 2}
        weeks = (await api.get("/v1/market/weeks")).json()
        assert [(w["week_start"], w["conversions"]) for w in weeks] == [("2026-11-02", 55.5), ("2026-11-09", 40.0)]

        # The same week twice in one request: the last entry wins, as if PUT one after another.
        twice = await api.put(
            "/v1/market/weeks", json={"weeks": [week("2026-11-16", conversions=1), week("2026-11-18", conversions=2)]}
        )
        assert twice.json() == {"stored": 1, "total_weeks": 3}
        assert (await api.get("/v1/market/weeks")).json()[-1]["conversions"] == 2

        for bad in (
            {"weeks": [week("2026-11-02", social=-1)]},
            {"weeks": [{**week("2026-11-02"), "conversions": True}]},
            {"weeks": [{**week("2026-11-02"), "week_start": 0}]},
            {"weeks": [{**week("2026-11-02"), "spend_cents": {"tv": 100}}]},  # not a channel
            {"weeks": []},
            {"weeks": [{**week("2026-11-02"), "conversions": -3}]},
        ):
            response = await api.put("/v1/market/weeks", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["error"]["code"] == "validation_error"
            assert response.json()["error"]["fields"]
        # Nothing of a rejected request was written.
        assert len((await api.get("/v1/market/weeks")).json()) == 3

    async with api_client(settings, tenant=tenant, role="viewer") as viewer:
        assert (await viewer.put("/v1/market/weeks", json={"weeks": [week("2026-11-23")]})).status_code == 403
        assert len((await viewer.get("/v1/market/weeks")).json()) == 3
    async with api_client(settings, tenant=f"other-{uuid.uuid4().hex[:8]}") as other:
        assert (await other.get("/v1/market/weeks")).json() == []


async def test_reports_on_demand(make_settings, temporal_env):
    settings = make_settings()
    tenant = f"rep-{uuid.uuid4().hex[:8]}"
    async with running_workers(temporal_env.client, settings, kinds=("orchestration",)), \
            api_client(settings, tenant=tenant) as api:
        for bad in ({"scope": "campaign"}, {"scope": "tenant", "campaign_id": "cmp_x"}, {"scope": "galaxy"}):
            response = await api.post("/v1/reports", json=bad)
            assert response.status_code == 422, (bad, response.text)
        missing = await api.post("/v1/reports", json={"scope": "campaign", "campaign_id": "cmp_nope"})
        assert missing.status_code == 404

        first = await api.post("/v1/reports", json={"scope": "tenant"}, headers={"Idempotency-Key": "weekly-1"})
        assert first.status_code == 202, first.text
        again = await api.post("/v1/reports", json={"scope": "tenant"}, headers={"Idempotency-Key": "weekly-1"})
        assert again.json()["report_id"] == first.json()["report_id"]
        report_id = first.json()["report_id"]

        deadline = time.monotonic() + 120
        while (view := (await api.get(f"/v1/reports/{report_id}")).json())["status"] == "running":
            assert time.monotonic() < deadline, view
            await asyncio.sleep(0.3)
        assert view["status"] == "ready", view
        pdf = await api.get(view["pdf_url"])
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")
        html = await api.get(view["html_url"])
        assert html.status_code == 200 and "No experiments ran." in html.text

    async with api_client(settings, tenant=f"other-{uuid.uuid4().hex[:8]}") as other:
        assert (await other.get(f"/v1/reports/{report_id}")).status_code == 404
        assert (await other.get(f"/v1/reports/{report_id}/pdf")).status_code == 404


async def test_reallocation_decision_errors(make_settings):
    settings = make_settings()
    async with api_client(settings) as api:
        unknown = await api.post("/v1/campaigns/cmp_nope/reallocations", json={"round": 1, "decision": "approve"})
        assert unknown.status_code == 404
        bad = await api.post("/v1/campaigns/cmp_nope/reallocations", json={"round": 0, "decision": "maybe"})
        assert bad.status_code == 422
        assert {tuple(f["loc"])[-1] for f in bad.json()["error"]["fields"]} == {"round", "decision"}


async def test_scheduled_tenant_reports(make_settings, temporal_env):
    from temporalio.client import ScheduleIntervalSpec

    from agency.contracts import ScheduledReportsInput, ScheduledReportsResult, WorkflowName
    from workers.schedules import ensure_report_schedule

    settings = make_settings(report_schedule_interval_s=3600)
    tenant = f"sched-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    # The schedule is created once; an existing one (maybe re-timed by a person) is left alone.
    assert await ensure_report_schedule(client, settings) is True
    assert await ensure_report_schedule(client, settings) is False
    schedules = [s async for s in await client.list_schedules()]
    ours = [s for s in schedules if s.id.endswith(settings.queue_orchestration)]
    assert len(ours) == 1
    described = await client.get_schedule_handle(ours[0].id).describe()
    assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=1))]
    await client.get_schedule_handle(ours[0].id).delete()

    async with running_workers(client, settings, kinds=("orchestration",)), api_client(settings, tenant=tenant) as api:
        result = await client.execute_workflow(
            WorkflowName.SCHEDULED_REPORTS,
            ScheduledReportsInput(trigger="schedule", tenants=[tenant]),
            id=f"tenant-reports-test-{uuid.uuid4().hex[:8]}",
            task_queue=settings.queue_orchestration,
            result_type=ScheduledReportsResult,
        )
        assert len(result.reports) == 1 and tenant in result.reports[0]
        view = (await api.get(f"/v1/reports/{result.reports[0]}")).json()
        assert view["status"] == "ready" and view["trigger"] == "schedule" and view["scope"] == "tenant"
        assert (await api.get(view["pdf_url"])).content.startswith(b"%PDF")
