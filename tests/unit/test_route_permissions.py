"""Every route declares the permission it needs, and the README's route x role table is the truth."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

from agency.security.rbac import permission_table_markdown
from api.app import ROUTERS
from api.auth.principal import route_permissions

README = Path(__file__).resolve().parents[2] / "README.md"
# Reachable without a credential, on purpose.
PUBLIC = {
    "GET /healthz",
    "GET /readyz",
    "POST /v1/auth/token",
    "POST /v1/auth/refresh",
    "POST /v1/auth/logout",
    "GET /.well-known/jwks.json",
    # Authenticated by the provider's request signature (HubSpot webhooks v3), not a login.
    "POST /v1/webhooks/hubspot/{tenant}",
}


def _app_routes() -> tuple[set[str], dict]:
    api_routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    every = {f"{m} {r.path}" for r in api_routes for m in r.methods}
    assert len(every) >= 12, every  # the routers really were read
    return every, route_permissions(api_routes)


def test_every_non_public_route_requires_a_permission():
    every, guarded = _app_routes()
    unguarded = every - set(guarded) - PUBLIC
    assert not unguarded, f"routes without a declared permission: {sorted(unguarded)}"
    assert not (set(guarded) & PUBLIC)


def test_readme_table_matches_the_routes():
    _, guarded = _app_routes()
    expected = permission_table_markdown(dict(sorted(guarded.items(), key=lambda kv: (kv[0].split(" ", 1)[1], kv[0]))))
    match = re.search(r"<!-- route-permissions:start -->\n(.*?)<!-- route-permissions:end -->", README.read_text(), re.S)
    assert match, "README lacks the route-permissions markers"
    assert match.group(1) == expected, f"README route table is stale; replace it with:\n{expected}"

