"""Fault injection, request counting and accepted credentials for the sandbox's provider faces.

State is in memory: the sandbox is one process, and tests set faults right before the calls
they disturb. Rules are consumed in order; each applies to ``count`` matching requests.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field


class FaultRule(BaseModel):
    """One disturbance for the next ``count`` requests matching ``methods`` and ``path_contains``.

    * ``status_code`` (429, 5xx...): answer that error in the provider's shape without applying
      the request (``Retry-After: retry_after_s`` when given);
    * ``after_commit: true`` with a status: apply the request, then answer the error (the reply
      was lost on the way back, so a retry must not apply it twice);
    * ``delay_s``: answer (and apply) only after this long, to outlive a client's timeout.
    """

    count: int = Field(default=1, ge=1, le=100_000)
    status_code: int | None = Field(default=None, ge=400, le=599)
    retry_after_s: float | None = Field(default=None, ge=0, le=3600)
    delay_s: float = Field(default=0.0, ge=0, le=120)
    after_commit: bool = False
    methods: list[Literal["GET", "POST", "PUT", "PATCH", "DELETE"]] | None = None
    path_contains: str | None = None


class FaultPlan(BaseModel):
    rules: list[FaultRule] = Field(default_factory=list, max_length=100)


@dataclass
class _Armed:
    rule: FaultRule
    remaining: int


@dataclass
class FaultInjector:
    _plans: dict[str, list[_Armed]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, provider: str, plan: FaultPlan) -> None:
        with self._lock:
            self._plans[provider] = [_Armed(rule, rule.count) for rule in plan.rules]

    def clear(self, provider: str) -> None:
        with self._lock:
            self._plans.pop(provider, None)

    def remaining(self, provider: str) -> list[dict]:
        with self._lock:
            return [
                {**armed.rule.model_dump(), "remaining": armed.remaining}
                for armed in self._plans.get(provider, [])
                if armed.remaining > 0
            ]

    def take(self, provider: str, method: str, path: str) -> FaultRule | None:
        """The rule that applies to this request (and use one of its count), or None."""
        with self._lock:
            for armed in self._plans.get(provider, []):
                rule = armed.rule
                if armed.remaining <= 0:
                    continue
                if rule.methods is not None and method.upper() not in rule.methods:
                    continue
                if rule.path_contains is not None and rule.path_contains not in path:
                    continue
                armed.remaining -= 1
                return rule
        return None


@dataclass
class RequestCounters:
    """Requests received per provider, by ``"METHOD path-template status"``."""

    _counts: dict[str, Counter] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, provider: str, key: str) -> None:
        with self._lock:
            self._counts.setdefault(provider, Counter())[key] += 1

    def snapshot(self, provider: str) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.get(provider, Counter()).items()))

    def reset(self, provider: str) -> None:
        with self._lock:
            self._counts.pop(provider, None)


@dataclass
class ProviderCredentials:
    """Tokens each provider face accepts; unset providers accept the sandbox's own tokens."""

    default: frozenset[str]
    _by_provider: dict[str, frozenset[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, provider: str, tokens: list[str]) -> None:
        with self._lock:
            self._by_provider[provider] = frozenset(t for t in tokens if t)

    def accepts(self, provider: str, token: str) -> bool:
        with self._lock:
            return token in self._by_provider.get(provider, self.default)


class CredentialsUpdate(BaseModel):
    tokens: list[str] = Field(min_length=1, max_length=20)
