"""Token endpoint (RFC 6749), refresh, logout and the public JWKS."""

from __future__ import annotations

from typing import Annotated, Literal

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error, UnsupportedGrantTypeError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api import deps
from api.errors import ErrorBody, error_responses
from api.auth.principal import Authenticator, utcnow
from api.auth.service import AuthService, TokenGrant

router = APIRouter(tags=["auth"])

# Tokens must never land in a shared cache (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SecretField = Annotated[str, Field(min_length=1, max_length=1024)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class OAuthErrorBody(BaseModel):
    error: str
    error_description: str | None = None


class RefreshRequest(BaseModel):
    refresh_token: SecretField


def auth_service(
    request: Request,
    session: Annotated[AsyncSession, Depends(deps.db_session)],
    auth: Annotated[Authenticator, Depends(deps.authenticator)],
) -> AuthService:
    return AuthService(request, session, auth)


Service = Annotated[AuthService, Depends(auth_service)]
OAUTH_ERRORS = {
    400: {
        "model": OAuthErrorBody | ErrorBody,
        "description": "RFC 6749 §5.2 error (invalid_grant, invalid_request, ...), or a malformed body",
    },
    401: {"model": OAuthErrorBody, "description": "Client authentication failed (invalid_client)"},
    **error_responses(422, 429, 503),
}


def _token_response(grant: TokenGrant) -> JSONResponse:
    body = TokenResponse(
        access_token=grant.access_token,
        expires_in=grant.expires_in,
        refresh_token=grant.refresh_token,
        scope=grant.scope,
    )
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


def oauth_error_response(error: OAuth2Error) -> JSONResponse:
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    if error.error == "invalid_client" and error.status_code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="agency"'
    return JSONResponse(dict(error.get_body()), status_code=error.status_code, headers=headers)


@router.post(
    "/v1/auth/token",
    name="auth.token",
    response_model=TokenResponse,
    responses=OAUTH_ERRORS,
    summary="Obtain tokens: password grant for people, client credentials for machines (RFC 6749)",
)
async def token(
    request: Request,
    svc: Service,
    grant_type: Annotated[str, Form(min_length=1, max_length=64, description="password, client_credentials or refresh_token")],
    tenant: Annotated[str | None, Form(max_length=64, description="Tenant slug (password grant)")] = None,
    username: Annotated[str | None, Form(max_length=320)] = None,
    password: Annotated[str | None, Form(max_length=1024)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=1024)] = None,
    refresh_token: Annotated[str | None, Form(max_length=1024)] = None,
    scope: Annotated[str | None, Form(max_length=1024)] = None,
) -> JSONResponse:
    try:
        if grant_type == "password":
            if not (tenant and username and password):
                raise InvalidRequestError(description="password grant needs tenant, username and password")
            return _token_response(await svc.password_grant(tenant, username, password))
        if grant_type == "client_credentials":
            # client_secret_basic (RFC 6749 §2.3.1) or client_secret_post.
            basic_id, basic_secret = extract_basic_authorization(request.headers)
            if basic_id and (client_id or client_secret):
                raise InvalidRequestError(description="use one client authentication method")
            cid, secret = (basic_id, basic_secret) if basic_id else (client_id, client_secret)
            if not (cid and secret):
                raise InvalidRequestError(description="client credentials grant needs client_id and client_secret")
            return _token_response(await svc.client_credentials_grant(cid, secret, scope))
        if grant_type == "refresh_token":
            if not refresh_token:
                raise InvalidRequestError(description="refresh_token grant needs refresh_token")
            return _token_response(await svc.refresh(refresh_token))
        raise UnsupportedGrantTypeError(grant_type[:64])
    except OAuth2Error as error:
        return oauth_error_response(error)


@router.post(
    "/v1/auth/refresh",
    name="auth.refresh",
    response_model=TokenResponse,
    responses=OAUTH_ERRORS,
    summary="Exchange a refresh token for new tokens; the presented one is used up",
)
async def refresh(body: RefreshRequest, svc: Service) -> JSONResponse:
    try:
        return _token_response(await svc.refresh(body.refresh_token))
    except OAuth2Error as error:
        return oauth_error_response(error)


@router.post(
    "/v1/auth/logout",
    name="auth.logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 422, 429, 503),
    summary="Revoke the refresh token's whole family (RFC 7009: unknown tokens also get 204)",
)
async def logout(body: RefreshRequest, svc: Service) -> Response:
    await svc.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/.well-known/jwks.json", name="auth.jwks", responses=error_responses(503), summary="Public keys that verify access tokens")
async def jwks(
    session: Annotated[AsyncSession, Depends(deps.db_session)],
    auth: Annotated[Authenticator, Depends(deps.authenticator)],
) -> JSONResponse:
    async with session.begin():
        # On first start, create the key that will sign, so verifiers can fetch it ahead of time.
        await auth.signing_keys.ensure_active_key(session, now=utcnow())
        document = await auth.signing_keys.jwks(session, now=utcnow())
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})
