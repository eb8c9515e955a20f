"""Replay committed workflow histories (campaigns, content pipelines, model rollouts) against
today's workflow code.

A change that would break running campaigns fails here. Histories are recorded from the
integration tests with ``AGENCY_RECORD_HISTORIES=1`` (see README, "Changing a workflow").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from agency.contracts import (
    ActivityName,
    CampaignHistory,
    CampaignInput,
    CampaignResult,
    WorkflowName,
)
from workflows import ALL_WORKFLOWS, content_pipeline
from workflows.campaign import CampaignWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    # Child workflow ids derive from the parent's id, so replay under the recorded id.
    events = json.loads(path.read_text())["events"]
    workflow_id = events[0]["workflowExecutionStartedEventAttributes"]["workflowId"]
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def test_histories_are_committed():
    names = {p.stem for p in HISTORIES}
    assert {
        "campaign_approved_and_rejected",
        "campaign_approval_expired",
        "campaign_cancelled",
        "campaign_cancelled_while_generating",
        # Recorded before the record-outcome-of-wrapped-errors patch: must keep replaying.
        "campaign_cancelled_while_generating_v0",
        # A content pipeline recorded before the wait-for-model-server and check-relevance patches.
        "content_pipeline_v0",
        # The same patches taken: a normal pipeline, and one that waited through a Triton outage.
        "campaign_approved_and_rejected_pipeline",
        "campaign_model_server_outage",
        "campaign_model_server_outage_pipeline",
        "model_rollout_promoted",
        "model_rollout_rolled_back",
        "model_rollout_load_failed",
        # Recorded before the market-model and steer-while-measuring patches: must keep replaying.
        "campaign_approved_and_rejected_v1",
        # Those patches taken: fitted allocation, an approved reallocation, experiments, ROI report.
        "campaign_decision_agents",
        # Service layer: CRM sync through a review conflict; a 10k-row contact import.
        "crm_sync_review_conflict",
        "contact_import_10k",
        # Recorded with the content-agents patch: brand profile, strategy calendar, ranked
        # candidates, an edit approved, a rejection redrafted from its reason.
        "campaign_content_agents",
        "campaign_content_agents_pipeline",
        # A competitive-watch poll after a feed changed (new and changed items, a 304, robots.txt).
        "competitive_watch_changed_feed",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path):
    await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path))


@workflow.defn(name=WorkflowName.CAMPAIGN)
class CampaignWorkflowWithoutHistoryLookup(CampaignWorkflow):
    """An unversioned change: planning no longer reads the tenant's history first."""

    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignResult:
        return await super().run(inp)

    async def _activity(self, name, arg, *, result_type=None, task_queue=None):
        if name == ActivityName.LOAD_CAMPAIGN_HISTORY:
            return CampaignHistory(tenant="")
        return await super()._activity(name, arg, result_type=result_type, task_queue=task_queue)


async def test_unversioned_change_is_caught_as_nondeterminism():
    path = next(p for p in HISTORIES if p.stem == "campaign_approved_and_rejected")
    others = [w for w in ALL_WORKFLOWS if w is not CampaignWorkflow]
    replayer = Replayer(workflows=[CampaignWorkflowWithoutHistoryLookup, *others])
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)
    assert ActivityName.PLAN_CAMPAIGN in str(result.replay_failure)


async def test_pipeline_patches_are_needed_for_pipelines_recorded_before_them(monkeypatch):
    path = next(p for p in HISTORIES if p.stem == "content_pipeline_v0")
    # Guarded: the old pipeline replays (also covered by test_replay).
    await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path))

    # Unguarded: the relevance check runs on old pipelines too, and replay must catch it.
    monkeypatch.setattr(
        content_pipeline.workflow, "patched", lambda patch_id: patch_id == content_pipeline.CHECK_RELEVANCE
    )
    result = await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)
    assert ActivityName.SCORE_RELEVANCE in str(result.replay_failure)


async def test_market_model_patch_is_needed_for_campaigns_recorded_before_it(monkeypatch):
    from workflows import campaign

    path = next(p for p in HISTORIES if p.stem == "campaign_approved_and_rejected_v1")
    # Guarded: a campaign started before the decision agents replays the old planning path.
    await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path))

    # Unguarded: fitting the market model would run in old campaigns too, and replay must catch it.
    monkeypatch.setattr(campaign.workflow, "patched", lambda patch_id: patch_id == campaign.MARKET_MODEL)
    result = await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)
    assert ActivityName.FIT_MARKET_MODEL in str(result.replay_failure)


async def test_content_agents_patch_is_needed_for_campaigns_recorded_before_it(monkeypatch):
    from workflows import campaign

    path = next(p for p in HISTORIES if p.stem == "campaign_decision_agents")
    await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path))

    # Unguarded: loading the brand profile would run in old campaigns too, and replay must catch it.
    patched = {campaign.MARKET_MODEL, campaign.STEER_WHILE_MEASURING, campaign.CONTENT_AGENTS}
    monkeypatch.setattr(campaign.workflow, "patched", lambda patch_id: patch_id in patched)
    result = await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(load(path), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError)
    assert ActivityName.LOAD_BRAND_PROFILE in str(result.replay_failure)
