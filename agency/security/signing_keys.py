"""JWT signing keys: one active key signs, retired keys keep verifying for a grace period.

Rotation never logs anyone out: the new key signs from now on, while every key whose
``verify_until`` has not passed stays in the verification key set and in the JWKS.

Production should keep private keys in a KMS or secret store and sign there. Until then the
private JWK is encrypted at rest with AES-256-GCM under a key derived (HKDF-SHA256) from
``settings.secret_key``, so a database dump alone cannot mint tokens. Changing secret_key
makes stored private keys unreadable: rotate() afterwards to create a fresh one.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey
from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models_identity import SigningKey
from agency.settings import Settings, get_settings

# The verifier accepts exactly what we issue: never "none", never HMAC (key confusion).
SIGNING_ALGORITHM = "ES256"
ALLOWED_ALGORITHMS: frozenset[str] = frozenset({SIGNING_ALGORITHM})
_CURVE = "P-256"

# Serialises key creation/rotation across API replicas (two replicas starting at once must not
# both create an active key). Arbitrary constant, unique within this application.
_ROTATION_LOCK_ID = 0x61676B5F6B657973 & 0x7FFFFFFFFFFFFFFF


class KeyEncryptor:
    """AES-256-GCM around a private JWK; the kid is authenticated data, so envelopes can't be swapped."""

    _INFO = b"agency/signing-keys/v1"

    def __init__(self, secret_key: str) -> None:
        self._aead = AESGCM(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self._INFO).derive(secret_key.encode())
        )

    def encrypt(self, kid: str, private_jwk: dict[str, Any]) -> dict[str, str]:
        nonce = os.urandom(12)
        ciphertext = self._aead.encrypt(nonce, json.dumps(private_jwk).encode(), kid.encode())
        return {"enc": "A256GCM", "iv": _b64(nonce), "ct": _b64(ciphertext)}

    def decrypt(self, kid: str, envelope: dict[str, Any]) -> dict[str, Any]:
        if envelope.get("enc") != "A256GCM":
            raise ValueError(f"signing key {kid}: unsupported envelope")
        try:
            plain = self._aead.decrypt(_unb64(envelope["iv"]), _unb64(envelope["ct"]), kid.encode())
        except InvalidTag as error:
            raise ValueError(f"signing key {kid}: cannot decrypt (secret_key changed?)") from error
        return json.loads(plain)


@dataclass(frozen=True)
class ActiveSigningKey:
    kid: str
    algorithm: str
    key: ECKey  # private

    def __repr__(self) -> str:  # never print key material
        return f"ActiveSigningKey(kid={self.kid!r}, algorithm={self.algorithm!r})"


@dataclass(frozen=True)
class VerificationKeys:
    """Public keys by kid, each with the one algorithm it may be used with."""

    keys: dict[str, tuple[str, ECKey]]

    def get(self, kid: str) -> tuple[str, ECKey] | None:
        return self.keys.get(kid)


class SigningKeyStore:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or get_settings()
        self._encryptor = KeyEncryptor(self._settings.secret_key.get_secret_value())

    async def ensure_active_key(self, session: AsyncSession, *, now: datetime) -> SigningKey:
        """The active (signing) key, created if there is none. Flushes; the caller commits."""
        await _lock_rotation(session)
        current = await self._newest_active(session)
        if current is not None:
            return current
        return await self._create(session, now=now)

    async def rotate(self, session: AsyncSession, *, now: datetime) -> SigningKey:
        """Retires every active key (they verify for the grace period) and creates a new signer."""
        await _lock_rotation(session)
        await session.execute(
            update(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .values(
                retired_at=now,
                verify_until=now + timedelta(seconds=self._settings.signing_key_verify_grace_s),
            )
        )
        return await self._create(session, now=now)

    async def signing_key(self, session: AsyncSession, *, now: datetime) -> ActiveSigningKey:
        row = await self._newest_active(session) or await self.ensure_active_key(session, now=now)
        private = ECKey.import_key(self._encryptor.decrypt(row.kid, row.private_jwk))
        return ActiveSigningKey(kid=row.kid, algorithm=row.algorithm, key=private)

    async def verification_keys(self, session: AsyncSession, *, now: datetime) -> VerificationKeys:
        rows = await self._verifying(session, now=now)
        return VerificationKeys(
            keys={
                row.kid: (row.algorithm, ECKey.import_key(row.public_jwk))
                for row in rows
                if row.algorithm in ALLOWED_ALGORITHMS
            }
        )

    async def jwks(self, session: AsyncSession, *, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """The document for /.well-known/jwks.json: public halves of every key still verifying."""
        rows = await self._verifying(session, now=now)
        return {
            "keys": [
                {**_public_only(row.public_jwk), "kid": row.kid, "alg": row.algorithm, "use": "sig"}
                for row in rows
            ]
        }

    async def delete_expired(self, session: AsyncSession, *, now: datetime) -> int:
        """Removes keys that verify nothing any more (housekeeping)."""
        rows = (
            await session.scalars(
                select(SigningKey).where(SigningKey.verify_until.is_not(None), SigningKey.verify_until <= now)
            )
        ).all()
        for row in rows:
            await session.delete(row)
        await session.flush()
        return len(rows)

    async def _newest_active(self, session: AsyncSession) -> SigningKey | None:
        return await session.scalar(
            select(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc(), SigningKey.kid)
            .limit(1)
        )

    async def _verifying(self, session: AsyncSession, *, now: datetime) -> list[SigningKey]:
        return list(
            (
                await session.scalars(
                    select(SigningKey)
                    .where(or_(SigningKey.verify_until.is_(None), SigningKey.verify_until > now))
                    .order_by(SigningKey.created_at.desc(), SigningKey.kid)
                )
            ).all()
        )

    async def _create(self, session: AsyncSession, *, now: datetime) -> SigningKey:
        key = ECKey.generate_key(_CURVE, private=True)
        kid = key.thumbprint()  # RFC 7638: derived from the public key, so never ambiguous
        row = SigningKey(
            kid=kid,
            algorithm=SIGNING_ALGORITHM,
            public_jwk=_public_only(key.as_dict(private=False)),
            private_jwk=self._encryptor.encrypt(kid, key.as_dict(private=True)),
            created_at=now,
        )
        session.add(row)
        await session.flush()
        return row


async def _lock_rotation(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ROTATION_LOCK_ID})


_PUBLIC_EC_MEMBERS = ("kty", "crv", "x", "y")


def _public_only(jwk: dict[str, Any]) -> dict[str, Any]:
    # Allow-list rather than deleting "d": nothing private can slip into the JWKS by accident.
    return {name: jwk[name] for name in _PUBLIC_EC_MEMBERS}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
