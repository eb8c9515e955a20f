"""Competitive watch: the competitor sources a tenant watches, and the topics found there."""
