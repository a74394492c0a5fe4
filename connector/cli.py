"""The ``consent-connector`` command (console script). Each command's docstring is its --help;
the commands live in connector/commands/, one module per group."""

import click

from connector.commands.config import config
from connector.commands.db import db
from connector.commands.doctor import doctor
from connector.commands.expiry import expiry
from connector.commands.export import export
from connector.commands.jobs import jobs
from connector.commands.ledger import ledger
from connector.commands.reconcile import reconcile
from connector.commands.reconsent import reconsent
from connector.commands.retention import retention
from connector.commands.status import status
from connector.commands.worker import worker

SHORT_HELP = {
    worker: "Run the jobs (an RQ worker with its schedules).",
    status: "How it is doing: queues, workers, the CRM, the webhook.",
    doctor: "Check every outside part: CRM, webhook, Redis, SMTP, database.",
    config: "Check the purposes file, compare it with the CRM's lists.",
    jobs: "Why jobs failed; retry them, purge old ones.",
    export: "A person's consents and history, .xlsx or JSON (Art. 15).",
    reconcile: "Onboard persons whose webhook was lost.",
    db: "Create or upgrade the evidence database.",
    ledger: "The consent ledger: verify, query, erase.",
    retention: "Who is kept past delete_after, for the DPO.",
    expiry: "Consents that lapse: the report, the pass.",
    reconsent: "Ask who agreed to an older consent text to read the new one.",
}
"""Each command's line in the list ``consent-connector --help`` shows (the docstrings' first
sentences do not fit a line)."""


@click.group()
@click.version_option(package_name="consent-connector", message="consent-connector %(version)s")
def main():
    """GDPR consent management for SuperOffice: the worker that records consents and sends the
    mails, and the tools to check, support and account for it.

    \b
      run it          worker (the web process is gunicorn: see the Procfile)
      check it        config check, config diff, doctor, status
      support         jobs list|show|retry|purge, export PERSON_ID
      lost webhooks   reconcile
      evidence        db upgrade, ledger verify|query|erase
      for the DPO     retention report, expiry report|run, reconsent

    Each command's --help says what it reads and changes. Settings come from the environment
    (the README lists them).
    """


for command, short_help in SHORT_HELP.items():
    command.short_help = short_help
    main.add_command(command)
