"""``python -m connector`` runs the consent-connector command."""

from connector.cli import main

main()
