"""Refuse new campaigns while the model server is down, instead of queueing work that waits."""

from __future__ import annotations

import asyncio
import time

from agency.inference import TritonInference
from api.errors import ServiceUnavailable


class ModelGate:
    def __init__(self, inference: TritonInference, *, cache_s: float = 2.0, timeout_s: float = 3.0) -> None:
        self._inference = inference
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._checked_at = float("-inf")
        self._ready = False

    async def require_ready(self) -> None:
        now = time.monotonic()
        if now - self._checked_at > self._cache_s:
            try:
                self._ready = await asyncio.wait_for(self._inference.is_ready(), self._timeout_s)
            except Exception:  # noqa: BLE001 - any failure means "not ready"
                self._ready = False
            self._checked_at = now
        if not self._ready:
            raise ServiceUnavailable("triton", "the model server is not ready; retry shortly")
