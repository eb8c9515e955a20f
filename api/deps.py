"""Request-scoped dependencies; the app state (engine, clients) is owned by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agency.security.rbac import Permission, Principal
from agency.settings import Settings
from api.auth.principal import Authenticator, requires
from api.model_gate import ModelGate
from api.temporal_gateway import TemporalGateway


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


def temporal(request: Request) -> TemporalGateway:
    return request.app.state.temporal


def settings(request: Request) -> Settings:
    return request.app.state.settings


def model_gate(request: Request) -> ModelGate:
    return request.app.state.model_gate


def authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


def workflow_service(service_cls: Callable[..., Any]) -> Callable[[Permission], Callable[..., Any]]:
    """``service_for(permission)`` for a service built as ``service_cls(session, temporal,
    settings, principal)``: the dependency acting for a caller that holds ``permission``."""

    def service_for(permission: Permission) -> Callable[..., Any]:
        def service(
            session: Annotated[AsyncSession, Depends(db_session)],
            temporal_gateway: Annotated[TemporalGateway, Depends(temporal)],
            app_settings: Annotated[Settings, Depends(settings)],
            principal: Principal = requires(permission),
        ) -> Any:
            return service_cls(session, temporal_gateway, app_settings, principal)

        return service

    return service_for
