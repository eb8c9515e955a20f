"""Retry timing and circuit breaking shared by every adapter.

Retries inside one activity attempt are short (a few seconds in all): they ride out a 429 or a
5xx blip without a Temporal round trip. Anything longer is left to the activity's retry policy,
which gets the provider's ``Retry-After`` as ``next_retry_delay`` (see
:func:`activities.integration_errors.provider_errors`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agency.integrations.errors import CircuitOpen


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped per attempt and in total."""

    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    # No in-call retry may start after this much time has passed since the first attempt.
    max_elapsed_s: float = 15.0

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random | None = None) -> float:
        """Wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

        A provider's ``Retry-After`` is a floor, never shortened; a little jitter on top keeps
        many clients that were told the same instant from coming back together.
        """
        rng = rng or random
        backoff = rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))
        if retry_after_s is not None:
            return retry_after_s + rng.uniform(0, min(1.0, 0.1 * retry_after_s + self.base_delay_s))
        return backoff


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass
class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures; open -> half-open after
    ``reset_after_s``, when one trial call is let through; its success closes the breaker."""

    provider: str
    failure_threshold: int = 8
    reset_after_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = 0
    _opened_at: float | None = None
    _trial_in_flight: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self.clock() - self._opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go out now."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return
            wait = self.reset_after_s - (self.clock() - (self._opened_at or 0.0))
            raise CircuitOpen(
                self.provider,
                f"circuit open after {self._failures} consecutive failures",
                retry_after_s=max(0.1, wait),
            )

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self.clock()
            self._trial_in_flight = False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def circuit_for(provider: str, base_url: str, **options) -> CircuitBreaker:
    """The process-wide breaker of one provider endpoint (all tenants share the provider's health)."""
    key = f"{provider} {base_url}"
    with _breakers_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = _breakers[key] = CircuitBreaker(provider, **options)
        return breaker
