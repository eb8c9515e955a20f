"""Temporal workflows: orchestration only (order, waiting, approvals, retries, children)."""

from workflows.campaign import CampaignWorkflow
from workflows.content_pipeline import ContentPipelineWorkflow

ALL_WORKFLOWS = [CampaignWorkflow, ContentPipelineWorkflow]

__all__ = ["ALL_WORKFLOWS", "CampaignWorkflow", "ContentPipelineWorkflow"]
