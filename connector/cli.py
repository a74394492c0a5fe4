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


@click.group()
def main():
    """GDPR consent management for SuperOffice: run the worker, check the config and the
    outside parts (doctor), look after jobs, reconcile, export, keep the evidence database
    (db, ledger)."""


for command in (config, worker, jobs, reconcile, reconsent, retention, expiry, status, export,
                doctor, db, ledger):
    main.add_command(command)
