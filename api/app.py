"""`create_app()`: the FastAPI application; its lifespan owns the engine and the clients."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from agency.db.session import create_engine, resolve_database_url, session_factory
from agency.inference import TenantPriorities, TritonInference
from agency.security.rate_limit import PostgresRateLimiter
from agency.settings import Settings, get_settings
from api import health
from api.api_keys import endpoints as api_keys
from api.approvals import endpoints as approvals
from api.audit import endpoints as audit
from api.audit_trail import RequestContextMiddleware
from api.auth import endpoints as auth
from api.auth.principal import Authenticator
from api.brand import endpoints as brand
from api.campaigns import endpoints as campaigns
from api.competitors import endpoints as competitors
from api.contacts import endpoints as contacts
from api.contacts_sync import endpoints as contacts_sync
from api.drafts import endpoints as drafts
from api.errors import install_error_handlers
from api.insights import endpoints as insights
from api.integrations import endpoints as integrations
from api.market import endpoints as market
from api.metrics import endpoints as metrics
from api.reports import endpoints as reports
from api.model_gate import ModelGate
from api.temporal_gateway import TemporalGateway


# Every API route lives in one of these (included without an extra prefix).
ROUTERS = [
    health.router,
    auth.router,
    campaigns.router,
    drafts.router,
    api_keys.router,
    audit.router,
    metrics.router,
    reports.router,
    market.router,
    brand.router,
    approvals.router,
    competitors.router,
    contacts.router,
    contacts_sync.router,
    insights.router,
    integrations.router,
]


def _allowed_methods(path: str) -> list[str]:
    """Every method some route serves at ``path`` (for 405's Allow header; routes split by method)."""
    methods: set[str] = set()
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path_regex.match(path):
                methods |= route.methods
    return sorted(methods)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Also for settings built in code: default secrets never serve outside local/test mode.
    settings.check_safe_for_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = create_engine(resolve_database_url(settings))
        inference = TritonInference(
            settings.triton_grpc_target,
            priorities=TenantPriorities(
                levels=dict(settings.tenant_priority_levels), fair_share=settings.inference_tenant_fair_share
            ),
        )
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = session_factory(engine)
        app.state.authenticator = Authenticator(settings, app.state.sessions, PostgresRateLimiter(engine))
        app.state.temporal = TemporalGateway(settings.temporal_target, settings.temporal_namespace)
        app.state.inference = inference
        app.state.model_gate = ModelGate(inference)
        try:
            yield
        finally:
            await inference.close()
            await engine.dispose()

    app = FastAPI(
        title="agency",
        version="0.1.0",
        summary="Autonomous marketing agency: start and steer durable campaign pipelines.",
        lifespan=lifespan,
    )
    install_error_handlers(app, allowed_methods=_allowed_methods)
    app.add_middleware(RequestContextMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    return app
