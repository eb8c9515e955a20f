"""Small helpers every provider face uses."""

from __future__ import annotations

import hmac

from fastapi import Request

from agency.sandbox.providers.faults import ProviderCredentials


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_accepted(credentials: ProviderCredentials, provider: str, token: str) -> bool:
    # Constant-time comparison against each accepted token.
    return bool(token) and any(
        hmac.compare_digest(token.encode(), candidate.encode())
        for candidate in credentials._by_provider.get(provider, credentials.default)
    )


_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                  504: "DEADLINE_EXCEEDED"}


def google_status(status_code: int) -> str:
    """The google.rpc.Code name Google APIs put in ``error.status`` for an HTTP status."""
    return _GOOGLE_STATUS.get(status_code, "UNKNOWN" if status_code >= 500 else "FAILED_PRECONDITION")
