"""Adapters to the outside world, one per service kind: email, CRM, analytics, social, ads.

Every adapter speaks its provider's documented HTTP (or SMTP) protocol through
:class:`agency.integrations.http.ProviderHttp`, which owns timeouts, connection pooling,
jittered retries that honour ``Retry-After``, a circuit breaker per provider and the mapping of
provider answers onto :mod:`agency.integrations.errors`. In local mode and in tests the base URLs
point at the sandbox (``agency sandbox``), which speaks the same shapes; real endpoints are one
setting away (``AGENCY_INTEGRATIONS_TARGET=live``).
"""
