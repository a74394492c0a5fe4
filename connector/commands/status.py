"""``consent-connector status``: how the connector is doing (connector.support.status_report),
with an exit status for monitoring."""

import sys

import click

from connector.commands import services_or_exit
from connector.support.status_report import REDIS_UNREACHABLE, report


@click.command()
def status():
    """Show how the connector is doing: queues, workers and failures, the purposes file on
    disk and the version in force, the CRM tenant's state, its webhooks, bad webhook
    signatures of the last hour, the last reconciliation and the evidence database. It runs
    with a refused purposes file too, and says why the file was refused.

    \b
    Exit status, for monitoring:
      0  all is well
      1  something needs attention: no worker alive, failed jobs, no Active webhook, bad
         webhook signatures, a refused purposes file, a failed reconciliation, the tenant
         or the evidence database unavailable (the last line lists them)
      2  it cannot look: Redis is unreachable, or a setting is missing or invalid
    """
    sections, attention = report(services_or_exit(config_required=False))
    for section in sections:
        for line in section:
            click.echo(line)
        click.echo("")
    if not attention:
        click.echo("status: all is well")
        return
    click.echo(f"status: needs attention: {'; '.join(attention)}")
    sys.exit(2 if REDIS_UNREACHABLE in attention else 1)
