"""Request-scoped dependencies; the app state (engine, clients) is owned by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from agency.settings import Settings
from api.auth.principal import Authenticator
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
