"""Shared domain code for the agency backend: settings, contracts, DB models, agents."""
