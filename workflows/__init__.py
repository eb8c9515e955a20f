"""Temporal workflows: orchestration only (order, waiting, approvals, retries, children)."""

from workflows.campaign import CampaignWorkflow
from workflows.content_pipeline import ContentPipelineWorkflow
from workflows.model_rollout import ModelRolloutWorkflow

ALL_WORKFLOWS = [CampaignWorkflow, ContentPipelineWorkflow, ModelRolloutWorkflow]

__all__ = ["ALL_WORKFLOWS", "CampaignWorkflow", "ContentPipelineWorkflow", "ModelRolloutWorkflow"]
