"""Webhooks: signed notifications of job and batch events, kept in an outbox and sent at least once."""
