"""Provider errors, split the way Temporal retry policy needs them.

* :class:`ProviderRejected`: the provider refused the request (4xx other than 408/429); the same
  request will be refused again. Activities turn it into a non-retryable ``ApplicationError``.
* :class:`ProviderUnavailable`: 429, 5xx, 408, timeouts, connection errors, unreadable replies.
  Retryable; ``retry_after_s`` carries the provider's ``Retry-After`` when it sent one.
* :class:`CircuitOpen`: too many recent failures for this provider; calls fail fast until the
  breaker half-opens (``retry_after_s`` says when).
"""

from __future__ import annotations

from typing import Any


class ProviderError(Exception):
    """Base class of every adapter error; ``provider`` names the service (``hubspot``, ``ga4``...)."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class ProviderRejected(ProviderError):
    """A 4xx answer that retrying cannot fix (validation, conflict, permission, not found)."""

    def __init__(
        self, provider: str, status_code: int, code: str, message: str, body: Any = None
    ) -> None:
        super().__init__(provider, f"HTTP {status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.body = body


def not_connected(provider: str, code: str = "not_connected") -> ProviderRejected:
    """The tenant has stored no credential for ``provider`` (live mode): retrying cannot help."""
    return ProviderRejected(
        provider, 422, code,
        f"{provider} is not connected for this tenant (PUT /v1/integrations/{provider}/credentials)",
    )


class ProviderAuthFailed(ProviderRejected):
    """401/403 even with the newest stored credential: the tenant must re-connect the provider."""


class ProviderUnavailable(ProviderError):
    """A transient failure: retry later (after ``retry_after_s`` when the provider said so)."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(provider, message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class CircuitOpen(ProviderUnavailable):
    """The provider's circuit breaker is open: the call was not attempted."""
