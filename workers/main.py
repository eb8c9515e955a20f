"""Run Temporal workers for one or more task queues.

orchestration: the workflows plus database, agent and report activities;
inference: model calls to Triton (scale with model-server capacity);
integrations: channel adapters (scale with external rate limits);
model_control: model rollouts, one worker beside Triton (it writes Triton's model repository).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from agency.settings import Settings, get_settings

# Before numpy loads: the market model's matrices are small, and BLAS threads would only contend
# with the event loop and each other (measured ~3x slower fits with the default threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

QUEUE_KINDS = ("orchestration", "inference", "integrations", "model_control")
log = logging.getLogger("agency.workers")


def queue_name(settings: Settings, kind: str) -> str:
    return {
        "orchestration": settings.queue_orchestration,
        "inference": settings.queue_inference,
        "integrations": settings.queue_integrations,
        "model_control": settings.queue_model_control,
    }[kind]


async def build_workers(client: Client, settings: Settings, kinds: list[str], stack: AsyncExitStack) -> list[Worker]:
    """Create the workers for `kinds`, opening only the clients those queues need (closed by `stack`)."""
    workers: list[Worker] = []
    graceful = timedelta(seconds=settings.activity_timeout_s)
    if "orchestration" in kinds:
        from activities.brand import BrandActivities
        from activities.campaign_store import CampaignStoreActivities
        from activities.competitive import CompetitiveStoreActivities
        from activities.contact_import import ContactImportActivities
        from activities.content_insights import ContentInsightActivities
        from activities.ranking import RankingActivities
        from activities.experiments import ExperimentActivities
        from activities.market import MarketActivities
        from activities.model_rollout import RolloutAuditActivities
        from activities.planning import PlanningActivities
        from activities.reporting import ReportActivities
        from activities.roi_report import RoiReportActivities
        from agency.db.session import create_engine, resolve_database_url, session_factory
        from workflows import ALL_WORKFLOWS

        engine = create_engine(resolve_database_url(settings))
        stack.push_async_callback(engine.dispose)
        sessions = session_factory(engine)
        roi_reports = RoiReportActivities(
            sessions, settings.reports_dir, conversion_value_cents=settings.conversion_value_cents
        )
        activities = [
            *CampaignStoreActivities(sessions).all(),
            *PlanningActivities(sessions, max_posts_per_channel=settings.max_posts_per_channel).all(),
            *ReportActivities(sessions, settings.reports_dir, roi_reports=roi_reports).all(),
            *roi_reports.all(),
            *MarketActivities(sessions, min_history_weeks=settings.market_min_history_weeks).all(),
            *ExperimentActivities(sessions).all(),
            *RolloutAuditActivities(sessions).all(),
            *BrandActivities(sessions).all(),
            *ContentInsightActivities(sessions).all(),
            *CompetitiveStoreActivities(sessions).all(),
            *ContactImportActivities(sessions).all(),
            *RankingActivities().all(),
        ]
        workers.append(
            Worker(
                client,
                task_queue=settings.queue_orchestration,
                workflows=ALL_WORKFLOWS,
                activities=activities,
                graceful_shutdown_timeout=graceful,
            )
        )
    if "inference" in kinds:
        from activities.competitive import CompetitiveEmbedActivities
        from activities.content_generation import ContentGenerationActivities
        from activities.relevance import RelevanceActivities
        from agency.inference import TenantPriorities, TritonInference

        inference = TritonInference(
            settings.triton_grpc_target,
            priorities=TenantPriorities(
                levels=dict(settings.tenant_priority_levels), fair_share=settings.inference_tenant_fair_share
            ),
        )
        stack.push_async_callback(inference.close)
        workers.append(
            Worker(
                client,
                task_queue=settings.queue_inference,
                activities=[
                    *ContentGenerationActivities(inference).all(),
                    *RelevanceActivities(inference).all(),
                    *CompetitiveEmbedActivities(inference).all(),
                ],
                # Triton's dynamic batcher does the batching; enough slots to fill a batch.
                max_concurrent_activities=16,
                graceful_shutdown_timeout=timedelta(seconds=settings.generation_timeout_s),
            )
        )
    if "model_control" in kinds:
        from activities.model_rollout import ModelRolloutActivities
        from agency.inference import TritonInference
        from agency.triton_repository import TritonRepository

        control = TritonInference(settings.triton_grpc_target, timeout_s=settings.generation_timeout_s)
        stack.push_async_callback(control.close)
        workers.append(
            Worker(
                client,
                task_queue=settings.queue_model_control,
                activities=ModelRolloutActivities(control, TritonRepository.from_settings(settings)).all(),
                # One rollout step at a time: they load models and measure latency.
                max_concurrent_activities=1,
                graceful_shutdown_timeout=timedelta(seconds=settings.generation_timeout_s),
            )
        )
    if "integrations" in kinds:
        from activities.channel_publishing import ChannelActivities
        from activities.competitive import CompetitiveFetchActivities
        from activities.crm_sync import CrmSyncActivities, crm_factory
        from agency.channels import ChannelClient
        from agency.db.session import create_engine, resolve_database_url, session_factory
        from agency.integrations.accounts import TenantProviders

        # Provider credentials are per tenant (PostgreSQL), and CRM sync pages write PostgreSQL
        # in the same transaction as their CRM cursor (see activities.crm_sync).
        integrations_engine = create_engine(resolve_database_url(settings))
        stack.push_async_callback(integrations_engine.dispose)
        integration_sessions = session_factory(integrations_engine)
        channel = ChannelClient(settings.channel_url, token=settings.channel_token.get_secret_value())
        stack.push_async_callback(channel.aclose)
        providers = TenantProviders(settings, integration_sessions, channel)
        stack.push_async_callback(providers.aclose)
        fetch = CompetitiveFetchActivities()
        stack.push_async_callback(fetch.close)
        crm_sync = CrmSyncActivities(integration_sessions, crm_factory(settings, integration_sessions))
        stack.push_async_callback(crm_sync.close)
        workers.append(
            Worker(
                client,
                task_queue=settings.queue_integrations,
                activities=[*ChannelActivities(channel, providers, integration_sessions).all(), *fetch.all(), *crm_sync.all()],
                graceful_shutdown_timeout=graceful,
            )
        )
    return workers


async def serve(settings: Settings, kinds: list[str], stop: asyncio.Event) -> None:
    client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
    async with AsyncExitStack() as stack:
        workers = await build_workers(client, settings, kinds, stack)
        for worker in workers:
            await stack.enter_async_context(worker)
        if "orchestration" in kinds:
            from workers.schedules import ensure_report_schedule

            await ensure_report_schedule(client, settings)
        log.info("workers polling: %s", ", ".join(w.task_queue for w in workers))
        await stop.wait()
        log.info("shutting down workers (in-flight activities may finish)")
    # leaving the stack shuts the workers down gracefully, then closes clients


def main(queues: list[str]) -> int:
    kinds = list(QUEUE_KINDS) if "all" in queues else queues
    unknown = sorted(set(kinds) - set(QUEUE_KINDS))
    if unknown:
        raise SystemExit(f"unknown queue kind(s): {', '.join(unknown)}; choose from {', '.join(QUEUE_KINDS)} or all")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, kinds, stop)

    asyncio.run(run())
    return 0
