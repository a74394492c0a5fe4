"""``consent-connector reconcile``: onboard persons whose webhook was lost."""

import sys
from datetime import datetime

import click

from connector.commands import services_or_exit
from connector.crm.budget import Priority, crm_priority
from connector.exceptions import CRMError, ReconciliationRunningError
from connector.reconcile import reconcile as run_pass
from connector.times import now as current_time
from connector.times import parse_duration, parse_iso, readable


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """Turn ``--since`` into an aware UTC datetime: an ISO date or date-time
    (``2026-11-01``, ``2026-11-01T00:00``; UTC unless it carries an offset) or a duration
    back from now (``30m``, ``2h``, ``3d``, ``1w``; see connector.times.parse_duration).

    Raises:
        ValueError: the value is neither.
    """
    try:
        return (now or current_time()) - parse_duration(value)
    except ValueError:
        pass
    when = parse_iso(value)
    if when is None:
        raise ValueError(f"{value!r} is neither a date like 2026-11-01T00:00 nor a duration "
                         f"like 30m, 2h, 3d or 1w")
    return when


class _Since(click.ParamType):
    name = "WHEN"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return parse_since(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command()
@click.option("--since", type=_Since(), metavar="WHEN",
              help="Look at persons registered or updated after WHEN: a UTC date-time "
                   "(2026-11-01T00:00) or a duration back from now (30m, 2h, 3d, 1w). "
                   "Default: where the last complete pass stopped (the first pass: 24 h).")
@click.option("--all", "backfill", is_flag=True,
              help="Look at every person in the CRM: onboard a CRM that existed before the "
                   "connector. Every person not onboarded yet gets the default consents and, "
                   "where their source asks for it, the confirmation mail.")
@click.option("--dry-run", is_flag=True,
              help="List and count, queue nothing, leave the watermark alone.")
def reconcile(since, backfill, dry_run):
    """Onboard persons created or changed in the CRM that the connector has not seen.

    SuperOffice drops a webhook event after one failed delivery cycle and stops a webhook
    after 9 failed deliveries in a row. The workers run this every RECONCILE_INTERVAL minutes
    by themselves; run it by hand after an outage, or with --all once for an existing CRM.
    Onboarding jobs are queued for the workers; the command prints what it found.
    Exits 1 when the CRM could not be listed (nothing is lost: the next pass starts from
    the same place).
    """
    if since is not None and backfill:
        raise click.UsageError("give --since or --all, not both")
    services = services_or_exit()
    try:
        with crm_priority(Priority.BACKGROUND):
            summary = run_pass(services, since, backfill, dry_run=dry_run, trigger="manual",
                               progress=_progress_line if sys.stderr.isatty() else None)
    except ReconciliationRunningError as error:
        click.echo(f"consent-connector reconcile: {error}", err=True)
        sys.exit(1)
    except CRMError as error:
        click.echo(f"consent-connector reconcile: the CRM could not be listed: {error}\n"
                   f"Nothing was skipped: the watermark stays where it was and the next pass "
                   f"starts from the same place.", err=True)
        sys.exit(1)
    for line in summary_lines(summary):
        click.echo(line)


def _progress_line(summary: dict) -> None:
    """Show how far the pass is, on one line of the terminal, after each page."""
    click.echo(f"\r  listed {summary['listed']:,} · already onboarded "
               f"{summary['already_onboarded']:,} · queued {summary['queued']:,}", err=True,
               nl=False)


def summary_lines(summary: dict) -> list[str]:
    """The pass's summary as the lines the command prints."""
    if summary["mode"] == "all persons":
        scope = "every person in the CRM (--all)"
    else:
        origin = {"watermark": "the watermark, minus 5 min overlap", "since": "--since",
                  "first run": "first pass: the last 24 h"}[summary["mode"]]
        scope = f"persons registered or updated after {_show(summary['listed_after'])} ({origin})"
    verb = "would queue" if summary["dry_run"] else "queued"
    ids = summary["queued_ids"]
    shown = ", ".join(str(i) for i in ids) + (", …" if summary["queued"] > len(ids) else "")
    lines = [
        f"Reconciliation{' (dry run: nothing queued)' if summary['dry_run'] else ''}: {scope}",
        f"  listed             {_persons(summary['listed'])}",
        f"  already onboarded  {summary['already_onboarded']:,}",
        f"  {verb:<18} {summary['queued']:,}" + (f" onboarding job(s): person {shown}" if ids else ""),
    ]
    if summary["already_queued"]:
        lines.append(f"  already queued     {summary['already_queued']:,} (jobs of an earlier pass)")
    if summary["deferred"]:
        lines.append(f"  left for next pass {summary['deferred']:,} (changed in the last minute)")
    if summary["waited"]:
        lines.append(f"  waited             {summary['waited']:g} s (for the CRM request budget "
                     f"and the CRM's Retry-After)")
    if summary["dry_run"]:
        lines.append(f"  watermark          {_show(summary['watermark'])} (unchanged)")
    elif summary["watermark_moved"]:
        lines.append(f"  watermark          {_show(summary['watermark'])} (moved: the next pass "
                     f"starts there, minus 5 min)")
    else:
        lines.append(f"  watermark          {_show(summary['watermark'])} (unchanged)")
    return lines


def _persons(count: int) -> str:
    return f"{count:,} person" + ("" if count == 1 else "s")


def _show(iso: str | None) -> str:
    return f"{readable(iso)} UTC" if iso else "none yet"
