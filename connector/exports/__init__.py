"""Right of access and portability: a person's consents and history as .xlsx and JSON."""
