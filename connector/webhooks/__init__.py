"""Webhook receivers, one module per CRM: verify, parse and queue its events."""
