"""Access-token issue/verify: every attack or edge case yields InvalidToken with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from agency.security.access_tokens import (
    DEFAULT_LEEWAY_S,
    InvalidToken,
    issue_access_token,
    verify_access_token,
)
from agency.security.signing_keys import ActiveSigningKey, VerificationKeys
from agency.settings import Settings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = Settings(jwt_issuer="agency-test", jwt_audience="agency-api", access_token_ttl_s=900)


def _keypair(kid: str = "k1") -> tuple[ActiveSigningKey, VerificationKeys]:
    private = ECKey.generate_key("P-256", private=True)
    public = ECKey.import_key(private.as_dict(private=False))
    return ActiveSigningKey(kid=kid, algorithm="ES256", key=private), VerificationKeys({kid: ("ES256", public)})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _valid_claims(**overrides: Any) -> dict[str, Any]:
    issued = int(NOW.timestamp())
    claims = {
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "sub": "user-1",
        "tenant": "tenant-1",
        "roles": ["editor"],
        "jti": "j1",
        "iat": issued,
        "nbf": issued,
        "exp": issued + 900,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(signer: ActiveSigningKey, claims: dict[str, Any], **header: Any) -> str:
    full_header = {"alg": "ES256", "kid": signer.kid, "typ": "at+jwt", **header}
    return jwt.encode(full_header, claims, signer.key, algorithms=["ES256"])


def _reason(token: str, keys: VerificationKeys, *, now: datetime = NOW, settings: Settings = SETTINGS) -> str:
    with pytest.raises(InvalidToken) as caught:
        verify_access_token(token, keys, now=now, settings=settings)
    return caught.value.reason


def test_issued_token_verifies_with_all_required_claims() -> None:
    signer, keys = _keypair()
    issued = issue_access_token(
        signer,
        subject="user-1",
        tenant="t-1",
        roles=["admin"],
        scopes=["campaigns:read"],
        now=NOW,
        settings=SETTINGS,
    )
    claims = verify_access_token(issued.token, keys, now=NOW + timedelta(minutes=5), settings=SETTINGS)
    assert (claims.subject, claims.tenant, claims.roles) == ("user-1", "t-1", ("admin",))
    assert claims.scopes == ("campaigns:read",)
    assert claims.jti == issued.jti and claims.kid == "k1"
    assert claims.expires_at == NOW + timedelta(seconds=900) == issued.expires_at

    header = json.loads(base64.urlsafe_b64decode(issued.token.split(".")[0] + "=="))
    assert header == {"typ": "at+jwt", "alg": "ES256", "kid": "k1"}
    raw = json.loads(base64.urlsafe_b64decode(issued.token.split(".")[1] + "=="))
    assert {"iss", "aud", "sub", "tenant", "roles", "jti", "exp", "iat"} <= raw.keys()


def test_every_token_gets_its_own_jti() -> None:
    signer, _ = _keypair()
    first = issue_access_token(signer, subject="u", tenant="t", roles=[], now=NOW, settings=SETTINGS)
    second = issue_access_token(signer, subject="u", tenant="t", roles=[], now=NOW, settings=SETTINGS)
    assert first.jti != second.jti


def test_expired_token_is_rejected_after_the_leeway() -> None:
    signer, keys = _keypair()
    token = issue_access_token(signer, subject="u", tenant="t", roles=[], now=NOW, settings=SETTINGS).token
    expiry = NOW + timedelta(seconds=900)
    # Inside the clock-skew leeway it still passes; one second past it, it does not.
    verify_access_token(token, keys, now=expiry + timedelta(seconds=DEFAULT_LEEWAY_S - 1), settings=SETTINGS)
    assert _reason(token, keys, now=expiry + timedelta(seconds=DEFAULT_LEEWAY_S)) == "expired"
    assert _reason(token, keys, now=expiry + timedelta(days=1)) == "expired"


def test_wrong_audience_is_rejected() -> None:
    signer, keys = _keypair()
    token = issue_access_token(signer, subject="u", tenant="t", roles=[], now=NOW, settings=SETTINGS).token
    other_api = SETTINGS.model_copy(update={"jwt_audience": "billing-api"})
    assert _reason(token, keys, settings=other_api) == "wrong_audience"
    assert _reason(_sign(signer, _valid_claims(aud=["billing-api", "x"])), keys) == "wrong_audience"
    # A list that includes our audience is fine (RFC 7519 4.1.3).
    verify_access_token(_sign(signer, _valid_claims(aud=["x", "agency-api"])), keys, now=NOW, settings=SETTINGS)


def test_wrong_issuer_is_rejected() -> None:
    signer, keys = _keypair()
    assert _reason(_sign(signer, _valid_claims(iss="evil")), keys) == "wrong_issuer"


def test_tampered_signature_is_rejected() -> None:
    signer, keys = _keypair()
    token = issue_access_token(signer, subject="u", tenant="t", roles=["viewer"], now=NOW, settings=SETTINGS).token
    head, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert _reason(f"{head}.{payload}.{flipped}", keys) == "bad_signature"


def test_tampered_payload_is_rejected() -> None:
    signer, keys = _keypair()
    token = issue_access_token(signer, subject="u", tenant="t", roles=["viewer"], now=NOW, settings=SETTINGS).token
    head, _, signature = token.split(".")
    escalated = _b64(json.dumps(_valid_claims(sub="u", tenant="t", roles=["admin"])).encode())
    assert _reason(f"{head}.{escalated}.{signature}", keys) == "bad_signature"


def test_token_signed_by_a_foreign_key_with_a_known_kid_is_rejected() -> None:
    _, keys = _keypair("k1")
    attacker, _ = _keypair("k1")
    assert _reason(_sign(attacker, _valid_claims()), keys) == "bad_signature"


def test_unknown_kid_is_rejected() -> None:
    signer, _ = _keypair("k-old")
    _, other_keys = _keypair("k-new")
    token = issue_access_token(signer, subject="u", tenant="t", roles=[], now=NOW, settings=SETTINGS).token
    assert _reason(token, other_keys) == "unknown_kid"


def test_missing_kid_is_rejected_as_unknown() -> None:
    signer, keys = _keypair()
    token = jwt.encode({"alg": "ES256", "typ": "at+jwt"}, _valid_claims(), signer.key, algorithms=["ES256"])
    assert _reason(token, keys) == "unknown_kid"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_rejected(alg: str) -> None:
    _, keys = _keypair()
    unsigned = _segments({"alg": alg, "kid": "k1", "typ": "at+jwt"}, _valid_claims()) + "."
    assert _reason(unsigned, keys) == "algorithm_not_allowed"


def test_hs256_signed_with_the_public_key_is_rejected() -> None:
    """Key confusion: an attacker HMACs a token with our *public* key as the shared secret."""
    _, keys = _keypair()
    _, public = keys.get("k1")  # type: ignore[misc]
    for secret in (
        json.dumps(public.as_dict(private=False)).encode(),
        public.as_pem(private=False),
    ):
        signing_input = _segments({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}, _valid_claims())
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert _reason(f"{signing_input}.{_b64(mac)}", keys) == "algorithm_not_allowed"


def test_other_asymmetric_algorithm_is_rejected_even_with_a_valid_signature() -> None:
    _, keys = _keypair()
    rsa = RSAKey.generate_key(2048, private=True)
    token = jwt.encode({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, _valid_claims(), rsa, algorithms=["RS256"])
    assert _reason(token, keys) == "algorithm_not_allowed"


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "tenant", "roles", "jti", "exp", "iat"])
def test_missing_required_claim_is_rejected(claim: str) -> None:
    signer, keys = _keypair()
    assert _reason(_sign(signer, _valid_claims(**{claim: None})), keys) == "missing_claim"


def test_token_from_the_future_is_rejected() -> None:
    signer, keys = _keypair()
    later = int((NOW + timedelta(hours=1)).timestamp())
    token = _sign(signer, _valid_claims(iat=later, nbf=later, exp=later + 900))
    assert _reason(token, keys) == "not_yet_valid"


@pytest.mark.parametrize("exp", ["2030-01-01", True, [1]])
def test_non_numeric_expiry_is_rejected(exp: Any) -> None:
    signer, keys = _keypair()
    assert _reason(_sign(signer, _valid_claims(exp=exp)), keys) == "malformed"


def test_roles_must_be_a_list_of_strings() -> None:
    signer, keys = _keypair()
    assert _reason(_sign(signer, _valid_claims(roles="admin")), keys) == "malformed"


def test_jwt_of_another_type_is_not_an_access_token() -> None:
    signer, keys = _keypair()
    assert _reason(_sign(signer, _valid_claims(), typ="JWT"), keys) == "wrong_token_type"


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9", "x" * 10_000 + ".a.b", "é.é.é"]
)
def test_malformed_input_is_rejected(token: str) -> None:
    _, keys = _keypair()
    assert _reason(token, keys) == "malformed"
