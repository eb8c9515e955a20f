"""Provider errors -> Temporal failures: refusals fail for good, outages retry (after Retry-After)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from agency.integrations.errors import ProviderRejected, ProviderUnavailable


@contextmanager
def provider_errors(what: str) -> Iterator[None]:
    """Map adapter errors raised inside the block; ``what`` names the operation in the message."""
    try:
        yield
    except ProviderRejected as err:
        raise ApplicationError(
            f"{what}: {err}",
            {"provider": err.provider, "status_code": err.status_code, "code": err.code},
            type=f"ProviderRejected.{err.provider}.{err.code}",
            non_retryable=True,
        ) from err
    except ProviderUnavailable as err:
        delay = timedelta(seconds=err.retry_after_s) if err.retry_after_s is not None else None
        raise ApplicationError(
            f"{what}: {err}",
            {"provider": err.provider, "status_code": err.status_code},
            type=f"ProviderUnavailable.{err.provider}",
            next_retry_delay=delay,
        ) from err
