"""Every error case returns its status code with a machine-readable JSON body."""

from __future__ import annotations

import pytest

from api_flow import BRIEF, in_phase, start_campaign, wait_for
from conftest import api_client, free_port, running_workers

pytestmark = pytest.mark.integration


def error_code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"tenant": "other-tenant"}, "tenant"),  # the tenant is the caller's, never the body's
        ({"goals": []}, "goals"),
        ({"channels": ["fax"]}, "channels"),
        ({"channels": ["blog", "blog"]}, "channels"),
        ({"total_budget": "-5"}, "total_budget"),
        ({"total_budget": "10.999"}, "total_budget"),
        ({"start_date": "2026-13-01"}, "start_date"),
        ({"end_date": "2026-11-01"}, "body"),  # before start_date: a whole-brief error
        ({"product": ""}, "product"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_brief_is_422_with_field_errors(make_settings, change, field):
    async with api_client(make_settings()) as api:
        response = await api.post("/v1/campaigns", json={**BRIEF, **change})
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    assert any(field in err["loc"] for err in body["fields"]), body


async def test_missing_fields_are_listed(make_settings):
    async with api_client(make_settings()) as api:
        response = await api.post("/v1/campaigns", json={"name": "x"})
    assert response.status_code == 422
    missing = {err["loc"][-1] for err in response.json()["error"]["fields"] if err["type"] == "missing"}
    assert {"product", "audience", "goals", "channels", "total_budget", "start_date", "end_date"} <= missing


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/campaigns/cmp_nope"),
        ("GET", "/v1/campaigns/cmp_nope/content"),
        ("GET", "/v1/campaigns/cmp_nope/report"),
        ("POST", "/v1/campaigns/cmp_nope/pause"),
        ("POST", "/v1/campaigns/cmp_nope/cancel"),
    ],
)
async def test_unknown_campaign_is_404(make_settings, method, path):
    async with api_client(make_settings()) as api:
        response = await api.request(method, path)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


async def test_review_errors_and_report_not_ready(make_settings, temporal_env):
    settings = make_settings()
    async with running_workers(temporal_env.client, settings), api_client(settings) as api:
        campaign_id = await start_campaign(api, channels=["social"])
        unknown = await api.post(
            f"/v1/campaigns/{campaign_id}/approvals",
            json={"item_id": "nope", "decision": "approve"},
        )
        assert unknown.status_code == 404 and error_code(unknown) == "not_found"
        bad = await api.post(f"/v1/campaigns/{campaign_id}/approvals", json={"item_id": "x", "decision": "maybe"})
        assert bad.status_code == 422
        report = await api.get(f"/v1/campaigns/{campaign_id}/report")
        assert report.status_code == 409 and error_code(report) == "report_not_ready"

        view = await wait_for(api, campaign_id, in_phase("awaiting_approval"))
        item_id = view["items"][0]["item_id"]
        ok = await api.post(
            f"/v1/campaigns/{campaign_id}/approvals",
            json={"item_id": item_id, "decision": "reject"},
        )
        assert ok.status_code == 200
        again = await api.post(
            f"/v1/campaigns/{campaign_id}/approvals",
            json={"item_id": item_id, "decision": "approve"},
        )
        assert again.status_code == 409 and error_code(again) == "not_pending"


async def test_postgres_down_is_503_with_retry_hint(make_settings):
    async with api_client(make_settings()) as signed_in:
        credential = signed_in.headers["Authorization"]  # issued while the database was up
    settings = make_settings(database_url=f"postgresql://agency@127.0.0.1:{free_port()}/agency")
    async with api_client(settings, role=None) as api:
        api.headers["Authorization"] = credential
        response = await api.get("/v1/campaigns/cmp_00000000000000000000")
        ready = await api.get("/readyz")
    assert response.status_code == 503
    assert error_code(response) == "postgres_unavailable"
    assert response.headers["Retry-After"]
    assert ready.status_code == 503 and ready.json()["checks"]["postgres"] is False


async def test_temporal_down_is_503_with_retry_hint(make_settings):
    settings = make_settings(temporal_address=f"127.0.0.1:{free_port()}")
    async with api_client(settings) as api:
        response = await api.post("/v1/campaigns", json=BRIEF)
        ready = await api.get("/readyz")
    assert response.status_code == 503
    assert error_code(response) == "temporal_unavailable"
    assert response.headers["Retry-After"]
    assert response.json()["error"]["details"]["retry_after_s"] > 0
    assert ready.status_code == 503 and ready.json()["checks"]["temporal"] is False


async def test_triton_down_is_503(make_settings):
    settings = make_settings(triton_url=f"127.0.0.1:{free_port()}")
    async with api_client(settings) as api:
        response = await api.post("/v1/campaigns", json=BRIEF)
        ready = await api.get("/readyz")
    assert response.status_code == 503
    assert error_code(response) == "triton_unavailable"
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"postgres": True, "temporal": True, "triton": False}


async def test_ready_when_all_dependencies_are_up(make_settings):
    async with api_client(make_settings()) as api:
        ready = await api.get("/readyz")
        health = await api.get("/healthz")
    assert ready.status_code == 200, ready.text
    assert health.status_code == 200
