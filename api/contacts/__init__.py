"""/v1/contacts: the contact store and CSV imports into it."""
