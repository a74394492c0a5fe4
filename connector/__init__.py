"""consent-connector: GDPR consent management for existing CRMs (SuperOffice first)."""

__version__ = "0.1.0"

JSON_HEADERS = {"Accept": "application/json", "User-Agent": f"consent-connector/{__version__}"}
"""Sent with every outgoing JSON call (SuperOffice's API, login and state API), besides any
credentials."""
