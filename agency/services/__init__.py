"""Local services the agency runs for itself when no external ones are configured."""
