"""FastAPI front end: validates, authorizes, and starts/signals/updates/queries workflows."""
