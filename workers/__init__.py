"""Temporal workers, one per task queue, so each kind of work scales on its own."""
