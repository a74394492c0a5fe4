"""The person's own page, reached through the signed link in their mails."""
