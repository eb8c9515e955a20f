"""Two-way contact/company sync with a CRM: pure decisions (no I/O).

``mapping``: our fields <-> CRM properties; ``policy``: per-field conflict and deletion
policies; ``snapshot``: the per-field digests of the last agreement (``synced_hash``);
``reconcile``: one record's decision as plain data; ``contracts``: workflow/activity payloads.
"""
