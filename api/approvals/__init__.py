"""The approval inbox: pending content across the tenant's campaigns, and the reviewers' decisions."""
