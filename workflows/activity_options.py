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
