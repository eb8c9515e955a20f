"""Provider connections of a tenant: credentials stored encrypted, versioned and rotated."""
