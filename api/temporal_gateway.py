"""The API's single Temporal client, connected lazily so the API starts (and answers 503)
while Temporal is down, and reconnects when it comes back."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ServiceUnavailable

UNAVAILABLE_CODES = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}


class TemporalGateway:
    def __init__(self, target: str, namespace: str, *, connect_timeout_s: float = 5.0) -> None:
        self._target = target
        self._namespace = namespace
        self._timeout = connect_timeout_s
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        Client.connect(self._target, namespace=self._namespace), self._timeout
                    )
                except (RuntimeError, OSError, asyncio.TimeoutError, RPCError) as err:
                    raise unavailable(err) from err
        return self._client

    async def is_healthy(self) -> bool:
        try:
            client = await self.client()
            return await asyncio.wait_for(client.service_client.check_health(), self._timeout)
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            return False


def unavailable(err: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable("temporal", f"workflow service unreachable: {type(err).__name__}")


def is_unavailable(err: RPCError) -> bool:
    return err.status in UNAVAILABLE_CODES
