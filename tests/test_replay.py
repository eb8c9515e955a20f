"""Replay committed CampaignWorkflow histories against today's workflow code.

A change that would break running campaigns fails here. Histories are recorded from the
integration tests with ``AGENCY_RECORD_HISTORIES=1`` (see README, "Changing a workflow").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from agency.contracts import ActivityName, CampaignInput, CampaignResult, WorkflowName
from workflows import ALL_WORKFLOWS
from workflows.campaign import CampaignWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_are_committed():
    names = {p.stem for p in HISTORIES}
    assert {"campaign_approved_and_rejected", "campaign_approval_expired", "campaign_cancelled"} <= names


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
            from agency.contracts import CampaignHistory

            return CampaignHistory(tenant=inp_tenant(arg))
        return await super()._activity(name, arg, result_type=result_type, task_queue=task_queue)


def inp_tenant(_campaign_id: str) -> str:
    return "unknown"


async def test_unversioned_change_is_caught_as_nondeterminism():
    path = next(p for p in HISTORIES if p.stem == "campaign_approved_and_rejected")
    replayer = Replayer(workflows=[CampaignWorkflowWithoutHistoryLookup, *ALL_WORKFLOWS[1:]])
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondeterminism" in type(result.replay_failure).__name__.lower() or "Nondeterminism" in str(
        result.replay_failure
    )
