"""Provider faces of the sandbox: the request and response shapes of the real APIs the adapters
in :mod:`agency.integrations` call, served under one prefix each (``/hubspot/crm/v3/...``,
``/ga4/v1beta/...``, ``/google-ads/v17/...``, ``/linkedin/rest/...``, ``/x/2/...``,
``/resend/...``, ``/wordpress/wp-json/wp/v2/...``, ``/instagram/v21.0/...``).

Shared by every face (see :mod:`agency.sandbox.providers.faults`):

* fault injection per provider (``PUT /_sandbox/faults/{provider}``): status storms (429 with
  ``Retry-After``, 5xx bursts), slow answers that outlive a client's timeout, and answers lost
  after the request was applied;
* request counters per provider (``GET /_sandbox/requests/{provider}``), so tests count what the
  provider actually received;
* accepted credentials per provider (``PUT /_sandbox/credentials/{provider}``), so a rotation can
  keep old and new tokens valid together and then revoke the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agency.sandbox.providers.faults import FaultInjector, ProviderCredentials, RequestCounters


@dataclass
class SandboxContext:
    """What a face gets to build its router: its SQLite file, the clock and the shared controls."""

    db_path: Path
    time_scale: float
    faults: FaultInjector
    counters: RequestCounters
    credentials: ProviderCredentials


@dataclass(frozen=True)
class ProviderFace:
    name: str  # URL prefix and the key of faults, counters and credentials
    build: Callable[[SandboxContext], APIRouter]
    # The provider's own error shape for an injected fault: (status, message, retry_after_s) -> reply.
    error: Callable[[int, str, float | None], JSONResponse]


def all_faces() -> list[ProviderFace]:
    from agency.sandbox.providers import ga4, google_ads, hubspot, instagram, linkedin, resend, wordpress, x

    return [hubspot.FACE, ga4.FACE, google_ads.FACE, linkedin.FACE, x.FACE, resend.FACE, wordpress.FACE, instagram.FACE]
