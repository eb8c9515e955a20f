"""httpx adapter for the publishing protocol documented in :mod:`agency.sandbox.app`.

Error split, so activities can map them onto Temporal retry policy:

* :class:`ChannelRejected` — the channel answered 4xx (other than 429): a business error the
  same request will hit again (invalid copy, reused idempotency key, bad token). Non-retryable.
* :class:`ChannelUnavailable` — 5xx, 429, timeouts, connection errors, unreadable replies.
  Retryable; ``retry_after_s`` carries the server's ``Retry-After`` when it sent one.

Publishing and budget changes are safe to retry: every request carries ``Idempotency-Key``,
and a replay comes back as the original answer (``PublishResult.duplicate = True`` for posts).
"""

from __future__ import annotations

import email.utils
import time
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from agency.contracts import ItemMetrics, PublishRequest, PublishResult


class ChannelError(Exception):
    """Base class of channel adapter errors."""


class ChannelRejected(ChannelError):
    """The channel refused the request (4xx); retrying the same request cannot succeed."""

    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(f"channel rejected the request: HTTP {status_code} {self.code}: {self.message}")

    @property
    def _error(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"]
        return {}

    @property
    def code(self) -> str:
        return str(self._error.get("code", "unknown"))

    @property
    def message(self) -> str:
        return str(self._error.get("message", self.body if isinstance(self.body, str) else ""))

    @property
    def fields(self) -> list[str]:
        return [str(f) for f in self._error.get("fields", [])]


class ChannelUnavailable(ChannelError):
    """The channel could not be reached or failed transiently; retry later."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChannelClient:
    """Async client of one publishing endpoint; one instance per process is enough."""

    def __init__(self, base_url: str, *, token: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "agency-channel/1"},
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
        )

    async def __aenter__(self) -> ChannelClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def publish(self, req: PublishRequest) -> PublishResult:
        """Publish one content item; a replayed idempotency key returns the original post."""
        response = await self._request(
            "POST",
            f"/v1/channels/{req.channel}/posts",
            headers={"Idempotency-Key": req.idempotency_key},
            json={
                "campaign_id": req.campaign_id,
                "item_id": req.item_id,
                "format": req.format,
                "title": req.title,
                "body": req.body,
                "budget_cents": req.budget_cents,
            },
        )
        post = _json_object(response)
        if not post.get("id"):
            raise ChannelUnavailable(f"channel reply has no post id (HTTP {response.status_code})")
        replayed = response.status_code == 200 or (
            response.headers.get("Idempotent-Replayed", "").lower() == "true"
        )
        return PublishResult(
            item_id=req.item_id,
            external_id=str(post["id"]),
            url=str(post.get("url", "")),
            duplicate=replayed,
        )

    async def update_budget(
        self, external_id: str, budget_cents: int, *, idempotency_key: str
    ) -> dict:
        """Set a live post's TOTAL paid budget (spend so far included); returns the post.

        A total below what the post already spent is refused (:class:`ChannelRejected`, code
        ``budget_below_spend``); a replayed key returns the first answer's post unchanged.
        """
        response = await self._request(
            "PATCH",
            f"/v1/posts/{quote(external_id, safe='')}",
            headers={"Idempotency-Key": idempotency_key},
            json={"budget_cents": budget_cents},
        )
        post = _json_object(response)
        if not post.get("id"):
            raise ChannelUnavailable(f"channel reply has no post id (HTTP {response.status_code})")
        return post

    async def fetch_metrics(self, item_id: str, channel: str, external_id: str) -> ItemMetrics:
        """Cumulative metrics of a published post."""
        response = await self._request("GET", f"/v1/posts/{external_id}/metrics")
        data = _json_object(response)
        try:
            return ItemMetrics(
                item_id=item_id,
                channel=channel,
                external_id=external_id,
                impressions=int(data["impressions"]),
                clicks=int(data["clicks"]),
                conversions=int(data["conversions"]),
                spend_cents=int(data["spend_cents"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChannelUnavailable(f"malformed metrics from channel: {exc!r}") from exc

    async def list_posts(self, campaign_id: str | None = None) -> list[dict]:
        params = {"campaign_id": campaign_id} if campaign_id is not None else None
        return _list_data(await self._request("GET", "/v1/posts", params=params))

    async def list_deliveries(self, campaign_id: str | None = None) -> list[dict]:
        """Every publish attempt the channel received (sandbox audit log)."""
        params = {"campaign_id": campaign_id} if campaign_id is not None else None
        return _list_data(await self._request("GET", "/v1/deliveries", params=params))

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ChannelUnavailable(f"channel timed out: {method} {path}") from exc
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"channel unreachable: {method} {path}: {exc!r}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise ChannelUnavailable(
                f"channel unavailable: HTTP {status} on {method} {path}",
                status_code=status,
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise ChannelRejected(status, _body(response))
        return response


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = _body(response)
    if not isinstance(body, dict):
        # A 2xx that is not our JSON (e.g. a captive proxy page) is treated as transient.
        raise ChannelUnavailable(f"unexpected reply from channel (HTTP {response.status_code})")
    return body


def _list_data(response: httpx.Response) -> list[dict]:
    data = _json_object(response).get("data")
    if not isinstance(data, list):
        raise ChannelUnavailable("unexpected list reply from channel")
    return data
