"""Turning domain errors into Temporal failures."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError


def business_error(err: Exception) -> ApplicationError:
    """Bad input or a rejected request: retrying cannot help, so fail without retry."""
    return ApplicationError(str(err), type=type(err).__name__, non_retryable=True)
