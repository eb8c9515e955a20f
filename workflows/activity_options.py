"""Timeouts and retry policies shared by the workflows (pure values, no I/O)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from agency.contracts import CampaignTimings

# Transient failures (a worker died, Triton or the channel briefly down) retry with backoff;
# business failures are raised as non-retryable ApplicationErrors by the activities.
DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)


def short(timings: CampaignTimings) -> dict:
    """Options for database, agent and channel activities."""
    return {
        "start_to_close_timeout": timedelta(seconds=timings.activity_timeout_s),
        "retry_policy": DEFAULT_RETRY,
    }


def generation(timings: CampaignTimings) -> dict:
    """Options for model inference, which takes seconds per item on CPU."""
    return {
        "start_to_close_timeout": timedelta(seconds=timings.generation_timeout_s),
        "retry_policy": DEFAULT_RETRY,
    }


def compute(timings: CampaignTimings) -> dict:
    """Options for agents that fit models (seconds of CPU): the generation limit, not the short one."""
    return {
        "start_to_close_timeout": timedelta(seconds=max(timings.generation_timeout_s, timings.activity_timeout_s)),
        "retry_policy": DEFAULT_RETRY,
    }


def model_server_attempts(timings: CampaignTimings) -> dict:
    """Inference with few attempts: after them the pipeline reports the campaign degraded
    and waits for the model server instead of failing."""
    return {
        "start_to_close_timeout": timedelta(seconds=timings.generation_timeout_s),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=max(1, timings.model_server_attempts),
        ),
    }


def model_server_probe(timings: CampaignTimings) -> dict:
    """Readiness probe retried without limit: the campaign waits as long as the outage lasts."""
    return {
        "start_to_close_timeout": timedelta(seconds=max(5.0, timings.activity_timeout_s)),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=max(1.0, timings.model_server_probe_max_interval_s)),
        ),
    }
