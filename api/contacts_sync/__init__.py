"""/v1/sync: the CRM sync workflow per tenant, its review queue, and the HubSpot webhook receiver."""
