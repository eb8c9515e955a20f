"""Local sandbox publishing channel (see :mod:`agency.sandbox.app` for the protocol)."""

from agency.sandbox.app import create_sandbox_app

__all__ = ["create_sandbox_app"]
