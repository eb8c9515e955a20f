"""Helpers that drive a campaign through the HTTP API the way a client would."""

from __future__ import annotations

import asyncio
import time

import httpx
from temporalio.api.enums.v1 import EventType

# The tenant api_client signs in to; a campaign belongs to its caller's tenant.
TENANT = "acme-outdoor"


def workflow_id(campaign_id: str, tenant: str = TENANT) -> str:
    from api.campaigns.service import workflow_id_for

    return workflow_id_for(tenant, campaign_id)


BRIEF = {
    "name": "Winter boots launch",
    "product": "Trailblaze waterproof hiking boots",
    "audience": "weekend hikers aged 25-45",
    "goals": ["drive online sales", "grow newsletter signups"],
    "channels": ["blog", "social", "email"],
    "total_budget": "5000.00",
    "start_date": "2026-12-01",
    "end_date": "2026-12-14",
    "key_claims": ["waterproof for 8 hours of rain"],
}


async def start_campaign(api: httpx.AsyncClient, **changes) -> str:
    response = await api.post("/v1/campaigns", json={**BRIEF, **changes})
    assert response.status_code == 202, response.text
    return response.json()["campaign_id"]


async def wait_for(
    api: httpx.AsyncClient, campaign_id: str, predicate, *, timeout_s: float = 240, temporal=None
) -> dict:
    """Poll the campaign until ``predicate(view)``; on timeout, say where the workflow stood."""
    deadline = time.monotonic() + timeout_s
    last: dict = {}
    while time.monotonic() < deadline:
        response = await api.get(f"/v1/campaigns/{campaign_id}")
        assert response.status_code == 200, response.text
        last = response.json()
        if predicate(last):
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out; last state: {last}{await _history_tail(temporal, campaign_id)}")


async def _history_tail(temporal, campaign_id: str, events: int = 25) -> str:
    if temporal is None:
        return ""
    try:
        history = await temporal.get_workflow_handle(workflow_id(campaign_id)).fetch_history()
    except Exception as err:  # diagnostics only
        return f"\n(no workflow history: {err})"
    lines = [f"{e.event_id} {EventType.Name(e.event_type)}" for e in history.events[-events:]]
    return "\nlast workflow events:\n  " + "\n  ".join(lines)


def in_phase(*phases: str):
    return lambda view: view["phase"] in phases


def finished(view: dict) -> bool:
    return view["status"] in ("completed", "cancelled", "failed") and not view["live"]


async def record_history(client, campaign_id: str, name: str, *, tenant: str = TENANT) -> None:
    """With AGENCY_RECORD_HISTORIES=1, keep this run's history for the replay tests, and that of
    the first content pipeline (child workflow) as ``<name>_pipeline``."""
    history = await record_workflow_history(client, workflow_id(campaign_id, tenant), name)
    if history is None:
        return
    children = [
        event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]
    if children:
        await record_workflow_history(client, sorted(children)[0], f"{name}_pipeline")


async def record_workflow_history(client, workflow_id_: str, name: str):
    """With AGENCY_RECORD_HISTORIES=1, write the workflow's history to tests/histories/<name>.json."""
    import json
    import os
    from pathlib import Path

    if not os.environ.get("AGENCY_RECORD_HISTORIES"):
        return None
    folder = Path(__file__).resolve().parent.parent / "histories"
    folder.mkdir(exist_ok=True)
    history = await client.get_workflow_handle(workflow_id_).fetch_history()
    (folder / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return history
