"""Temporal workflows: orchestration only (order, waiting, approvals, retries, children)."""

from workflows.campaign import CampaignWorkflow
from workflows.competitive_watch import CompetitiveWatchWorkflow
from workflows.contact_import import ContactImportWorkflow
from workflows.content_pipeline import ContentPipelineWorkflow
from workflows.crm_sync import CrmSyncWorkflow
from workflows.model_rollout import ModelRolloutWorkflow
from workflows.roi_report import RoiReportWorkflow
from workflows.scheduled_reports import ScheduledReportsWorkflow

ALL_WORKFLOWS = [
    CampaignWorkflow,
    CompetitiveWatchWorkflow,
    ContactImportWorkflow,
    ContentPipelineWorkflow,
    CrmSyncWorkflow,
    ModelRolloutWorkflow,
    RoiReportWorkflow,
    ScheduledReportsWorkflow,
]

__all__ = [
    "ALL_WORKFLOWS",
    "CampaignWorkflow",
    "CompetitiveWatchWorkflow",
    "ContactImportWorkflow",
    "ContentPipelineWorkflow",
    "CrmSyncWorkflow",
    "ModelRolloutWorkflow",
    "RoiReportWorkflow",
    "ScheduledReportsWorkflow",
]
