"""Mail: confirmation.py writes the confirmation mail, delivery.py sends it (SMTP or outbox)."""
