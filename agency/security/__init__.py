"""Security layer: identities, password hashing, signing keys, access/refresh tokens, API keys,
rate limiting and the tamper-evident audit trail."""
