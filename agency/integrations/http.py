"""The HTTP client under every adapter: pooling, timeouts, retries, circuit breaker, error mapping.

An adapter describes its provider with a :class:`ProviderHttp` (base URL, credential source,
how to read the provider's error body) and calls :meth:`ProviderHttp.request`. Requests are
retried in-call only when that cannot duplicate a side effect: safe methods, requests carrying
an ``Idempotency-Key``, or ``retry_safe=True`` from an adapter that knows its endpoint is
idempotent (an upsert by unique key, a read-only POST such as GA4 ``runReport``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx

from agency.channels import parse_retry_after
from agency.integrations.errors import (
    ProviderAuthFailed,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from agency.integrations.reliability import CircuitBreaker, RetryPolicy, circuit_for

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# 408 Request Timeout and 425 Too Early are transient by definition.
_TRANSIENT_4XX = frozenset({408, 425, 429})


class CredentialSource(Protocol):
    """Where an adapter's auth headers come from (a tenant's stored credential, a static token)."""

    async def headers(self) -> dict[str, str]: ...

    async def refresh(self) -> bool:
        """Reload after a 401; True when a different credential is now in use (worth one retry)."""
        ...


@dataclass
class StaticCredential:
    """A fixed header set (tests, the sandbox's local token, SMTP-less email)."""

    values: dict[str, str]

    async def headers(self) -> dict[str, str]:
        return dict(self.values)

    async def refresh(self) -> bool:
        return False


def bearer(token: str) -> StaticCredential:
    return StaticCredential({"Authorization": f"Bearer {token}"})


ErrorReader = Callable[[httpx.Response], tuple[str, str]]


def default_error_reader(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from the common JSON error shapes; providers override when theirs differ."""
    try:
        body = response.json()
    except ValueError:
        return (f"http_{response.status_code}", response.text[:300])
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            code = error.get("code") or error.get("category") or error.get("status") or body.get("name")
            message = error.get("message") or body.get("message") or body.get("detail") or ""
            return (str(code or f"http_{response.status_code}"), str(message)[:500])
        if isinstance(error, str):
            return (error, str(body.get("message", ""))[:500])
    return (f"http_{response.status_code}", str(body)[:300])


class ProviderHttp:
    """One provider endpoint for one credential; reuse it (it pools connections)."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        credentials: CredentialSource | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        error_reader: ErrorReader = default_error_reader,
        classify: Callable[[httpx.Response], ProviderError | None] | None = None,
        headers: dict[str, str] | None = None,
        max_connections: int = 20,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._breaker = breaker or circuit_for(provider, self.base_url)
        self._error_reader = error_reader
        self._classify = classify
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": "agency-integrations/1", **(headers or {})},
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2),
            follow_redirects=False,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    async def __aenter__(self) -> ProviderHttp:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry_safe: bool | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; a 2xx/3xx response, else the mapped :class:`ProviderError`."""
        method = method.upper()
        headers = dict(headers or {})
        if retry_safe is None:
            retry_safe = method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in headers)
        started = time.monotonic()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            self._breaker.before_call()
            try:
                response = await self._send(method, path, headers, kwargs)
                error = self._error_for(response)
            except ProviderUnavailable as exc:
                error = exc
            if error is None:
                self._breaker.record_success()
                return response
            if isinstance(error, ProviderAuthFailed) and not refreshed and self._credentials is not None:
                # A rotated credential: the store may hold a newer one; retry once with it.
                refreshed = True
                if await self._credentials.refresh():
                    attempt -= 1
                    continue
            if not isinstance(error, ProviderUnavailable):
                # The provider answered: it is healthy even if it refused this request.
                self._breaker.record_success()
                raise error
            self._breaker.record_failure()
            delay = self._retry.delay_s(attempt, error.retry_after_s, self._rng)
            elapsed = time.monotonic() - started
            if not retry_safe or attempt >= self._retry.max_attempts or elapsed + delay > self._retry.max_elapsed_s:
                raise error
            await self._sleep(delay)

    async def _send(self, method: str, path: str, headers: dict[str, str], kwargs: dict) -> httpx.Response:
        auth = await self._credentials.headers() if self._credentials is not None else {}
        try:
            return await self._http.request(method, path, headers={**auth, **headers}, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(self.provider, f"timed out: {method} {path}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, f"unreachable: {method} {path}: {exc!r}") from exc

    def _error_for(self, response: httpx.Response) -> ProviderError | None:
        if self._classify is not None:
            special = self._classify(response)
            if special is not None:
                return special
        status = response.status_code
        if status < 400:
            return None
        code, message = self._error_reader(response)
        if status >= 500 or status in _TRANSIENT_4XX:
            return ProviderUnavailable(
                self.provider,
                f"HTTP {status} {code}: {message}",
                status_code=status,
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        body = _body(response)
        if status in (401, 403):
            return ProviderAuthFailed(self.provider, status, code, message, body)
        return ProviderRejected(self.provider, status, code, message, body)


class ProviderAdapter:
    """Base of the HTTP adapters: each owns one :class:`ProviderHttp` and closes it."""

    _http: ProviderHttp

    @property
    def http(self) -> ProviderHttp:
        return self._http

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def json_object(provider: str, response: httpx.Response) -> dict[str, Any]:
    """The reply's JSON object; anything else from a 2xx (a proxy page) counts as transient."""
    body = _body(response)
    if not isinstance(body, dict):
        raise ProviderUnavailable(provider, f"unexpected reply (HTTP {response.status_code}): not a JSON object")
    return body
