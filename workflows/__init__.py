"""Temporal workflows: orchestration only (order, waiting, approvals, retries, children)."""

from workflows.campaign import CampaignWorkflow
from workflows.competitive_watch import CompetitiveWatchWorkflow
from workflows.content_pipeline import ContentPipelineWorkflow
from workflows.model_rollout import ModelRolloutWorkflow
from workflows.roi_report import RoiReportWorkflow
from workflows.scheduled_reports import ScheduledReportsWorkflow

ALL_WORKFLOWS = [
    CampaignWorkflow,
    CompetitiveWatchWorkflow,
    ContentPipelineWorkflow,
    ModelRolloutWorkflow,
    RoiReportWorkflow,
    ScheduledReportsWorkflow,
]

__all__ = [
    "ALL_WORKFLOWS",
    "CampaignWorkflow",
    "CompetitiveWatchWorkflow",
    "ContentPipelineWorkflow",
    "ModelRolloutWorkflow",
    "RoiReportWorkflow",
    "ScheduledReportsWorkflow",
]
