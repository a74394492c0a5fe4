"""consent-connector: GDPR consent management for existing CRMs (SuperOffice first)."""

__version__ = "0.1.0"
