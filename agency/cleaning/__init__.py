"""Contact import cleaning: pure rules that turn messy CSV rows into clean contacts or reasons.

schema (row models, column names), normalize (one field at a time), pipeline (a row -> accepted or
quarantined with reasons), dedupe (rows of one email -> one contact; a contact merged into an
existing one), csvfile (bytes -> header and rows), messy (a seeded generator of messy files).
No I/O here: the activities read and write PostgreSQL around these functions.
"""
