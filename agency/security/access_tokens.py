"""Short-lived JWT access tokens (joserfc), signed by the active key and verified strictly.

Verification order: structure, algorithm allow-list, kid, signature, explicit type
(``typ: at+jwt``, RFC 9068, so no other JWT is mistaken for an access token), then claims.
Every failure raises ``InvalidToken`` with a machine-readable ``reason``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jws import extract_compact

from agency.security.signing_keys import ALLOWED_ALGORITHMS, ActiveSigningKey, VerificationKeys
from agency.settings import Settings, get_settings

ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "tenant", "roles", "jti", "exp", "iat")
# Clock skew tolerated between replicas for exp/nbf/iat.
DEFAULT_LEEWAY_S = 30
# Far above any token we issue; stops parsing cost attacks with huge inputs.
MAX_TOKEN_LENGTH = 8192

InvalidTokenReason = Literal[
    "malformed",
    "algorithm_not_allowed",
    "unknown_kid",
    "bad_signature",
    "wrong_token_type",
    "missing_claim",
    "wrong_issuer",
    "wrong_audience",
    "expired",
    "not_yet_valid",
]


class InvalidToken(Exception):
    def __init__(self, reason: InvalidTokenReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: InvalidTokenReason = reason


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str  # a bearer credential: never log it
    jti: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedAccessToken(jti={self.jti!r}, expires_at={self.expires_at})"


@dataclass(frozen=True)
class AccessTokenClaims:
    subject: str
    tenant: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    jti: str
    issued_at: datetime
    expires_at: datetime
    kid: str


def issue_access_token(
    signing_key: ActiveSigningKey,
    *,
    subject: str,
    tenant: str,
    roles: Sequence[str],
    scopes: Sequence[str] = (),
    now: datetime,
    settings: Settings | None = None,
) -> IssuedAccessToken:
    settings = settings or get_settings()
    if signing_key.algorithm not in ALLOWED_ALGORITHMS:
        raise ValueError(f"signing algorithm {signing_key.algorithm} is not allowed")
    issued = int(now.timestamp())
    expires = issued + settings.access_token_ttl_s
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "tenant": tenant,
        "roles": list(roles),
        "jti": jti,
        "iat": issued,
        "nbf": issued,
        "exp": expires,
    }
    if scopes:
        claims["scope"] = " ".join(scopes)  # RFC 9068: space-separated
    header = {"alg": signing_key.algorithm, "kid": signing_key.kid, "typ": ACCESS_TOKEN_TYPE}
    token = jwt.encode(header, claims, signing_key.key, algorithms=[signing_key.algorithm])
    return IssuedAccessToken(token=token, jti=jti, expires_at=datetime.fromtimestamp(expires, UTC))


def verify_access_token(
    token: str,
    keys: VerificationKeys,
    *,
    now: datetime,
    settings: Settings | None = None,
    leeway_s: int = DEFAULT_LEEWAY_S,
) -> AccessTokenClaims:
    settings = settings or get_settings()
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken("malformed", "not a compact JWS")
    try:
        header = extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError, json.JSONDecodeError) as error:
        raise InvalidToken("malformed", "unreadable header") from error

    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm_not_allowed", str(algorithm)[:32])
    kid = header.get("kid")
    entry = keys.get(kid) if isinstance(kid, str) else None
    if entry is None:
        raise InvalidToken("unknown_kid")
    key_algorithm, public_key = entry
    if key_algorithm != algorithm:
        raise InvalidToken("algorithm_not_allowed", "key is bound to another algorithm")

    try:
        decoded = jwt.decode(token, public_key, algorithms=[key_algorithm])
    except BadSignatureError as error:
        raise InvalidToken("bad_signature") from error
    except JoseError as error:
        raise InvalidToken("malformed", error.error) from error

    if decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("wrong_token_type")
    return _check_claims(decoded.claims, kid=kid, now=now, settings=settings, leeway_s=leeway_s)


def _check_claims(
    claims: dict[str, Any], *, kid: str, now: datetime, settings: Settings, leeway_s: int
) -> AccessTokenClaims:
    missing = [name for name in REQUIRED_CLAIMS if claims.get(name) is None]
    if missing:
        raise InvalidToken("missing_claim", ",".join(missing))

    if claims["iss"] != settings.jwt_issuer:
        raise InvalidToken("wrong_issuer")
    audience = claims["aud"]
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or settings.jwt_audience not in audiences:
        raise InvalidToken("wrong_audience")

    now_s = now.timestamp()
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", claims["iat"])
    if not all(_is_numeric_date(value) for value in (exp, iat, nbf)):
        raise InvalidToken("malformed", "exp/iat/nbf must be numbers")
    if now_s >= exp + leeway_s:
        raise InvalidToken("expired")
    if nbf > now_s + leeway_s or iat > now_s + leeway_s:
        raise InvalidToken("not_yet_valid")

    subject, tenant, jti, roles = claims["sub"], claims["tenant"], claims["jti"], claims["roles"]
    if not (isinstance(subject, str) and subject and isinstance(tenant, str) and tenant):
        raise InvalidToken("malformed", "sub and tenant must be non-empty strings")
    if not isinstance(jti, str) or not jti:
        raise InvalidToken("malformed", "jti must be a non-empty string")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidToken("malformed", "roles must be a list of strings")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidToken("malformed", "scope must be a string")

    return AccessTokenClaims(
        subject=subject,
        tenant=tenant,
        roles=tuple(roles),
        scopes=tuple(scope.split()),
        jti=jti,
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        kid=kid,
    )


def _is_numeric_date(value: object) -> bool:
    # bool is an int subclass, NaN never compares: both would defeat the time checks.
    return not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    )


__all__ = [
    "ACCESS_TOKEN_TYPE",
    "AccessTokenClaims",
    "InvalidToken",
    "IssuedAccessToken",
    "issue_access_token",
    "verify_access_token",
]
