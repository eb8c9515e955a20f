"""Temporal activities: all I/O happens here (PostgreSQL, Triton, channel adapters).

Each module holds one class whose methods are activities; the class receives its clients,
so a worker builds only the clients its task queue needs.
"""
