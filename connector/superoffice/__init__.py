"""SuperOffice, the first CRM: client.py (REST calls, ``CRMClient``), parse.py (its JSON →
connector.crm.types), webhook.py (signature and events), fixtures/ (recorded payloads, the
spec the tests read). See docs/superoffice-notes.md for the facts and their sources."""
