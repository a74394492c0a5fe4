"""``consent-connector jobs``: support staff see, understand and retry failed work."""

import click
import redis
import sqlalchemy.exc

from connector.commands import services_or_exit
from connector.evidence.database import unreachable_reason
from connector.exceptions import JobNotFailedError, JobNotFoundError
from connector.intake import waiting
from connector.support import jobs as support
from connector.support.dry_run import Plan, plan
from connector.times import parse_duration, readable


class _JobsGroup(click.Group):
    """Says "Redis unreachable" in a line instead of a traceback, for every subcommand."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except redis.exceptions.ConnectionError as error:
            raise click.ClickException(f"Redis unreachable (check REDIS_URL): {error}") from None


@click.group(cls=_JobsGroup)
def jobs():
    """See why jobs failed, retry them, purge old ones.

    Jobs are the connector's work on a person: onboarding (default consents and the
    confirmation mail), preferences (choices made on the person's page) and fresh links.
    Times are UTC. No command shows an email address.
    """


@jobs.command("list")
@click.option("--failed", is_flag=True,
              help="Jobs that failed for good (after their retries, or at once when retrying "
                   "cannot help).")
@click.option("--scheduled", is_flag=True, help="Jobs that failed and wait for their next retry.")
@click.option("--started", is_flag=True, help="Jobs a worker is running now.")
@click.option("--person", "person_id", type=int, metavar="ID",
              help="Only jobs about this CRM person.")
def list_command(failed: bool, scheduled: bool, started: bool, person_id: int | None):
    """List failed, scheduled and started jobs, and why.

    All three kinds unless you pick. Each line has the job, the person, the step, the
    attempts so far, when it failed / runs next / started (UTC), and the reason in words."""
    services = services_or_exit()
    picked = {"failed": failed, "scheduled": scheduled, "started": started}
    kinds = tuple(kind for kind in support.KINDS if picked[kind]) or support.KINDS
    summaries = support.list_jobs(services.redis, kinds, person_id)
    what = _or_list([k for k in support.KINDS if k in kinds])
    about = f" for person {person_id}" if person_id is not None else ""
    if not summaries:
        click.echo(f"No {what} jobs{about}.")
    else:
        rows = [("JOB", "PERSON", "STEP", "STATUS", "ATTEMPTS", "WHEN (UTC)", "REASON")]
        rows += [(s.id, _text(s.person_id), s.step, s.kind, str(s.attempts), readable(s.when),
                  s.reason) for s in summaries]
        for line in _table(rows):
            click.echo(line)
        counts = ", ".join(f"{sum(s.kind == k for s in summaries)} {k}" for k in support.KINDS
                           if k in kinds)
        click.echo(f"\n{counts}{about}. Details: consent-connector jobs show JOB")
    _say_what_waits_in_the_intake(services.redis, person_id)


def _say_what_waits_in_the_intake(connection, person_id: int | None) -> None:
    """Events not made into jobs yet are no job of any kind: say they are there."""
    if person_id is None:
        counts = {lane: count for lane, count in waiting(connection).items() if count}
        if counts:
            lanes = ", ".join(f"{count:,} in the {lane} lane" for lane, count in counts.items())
            click.echo(f"Waiting in the intake, not jobs yet: {lanes} (the workers make jobs "
                       f"of them as they have room; consent-connector status).")
        return
    for lane, entry in support.intake_entries_of(connection, person_id):
        click.echo(f"Waiting in the intake's {lane} lane, not a job yet: {entry.kind} for "
                   f"person {person_id} (will be job {entry.job_id}).")


@jobs.command("show")
@click.argument("job_id", metavar="ID")
def show_command(job_id: str):
    """Show everything known about job ID.

    Its status and reason, the arguments (personal data masked), each failed attempt with
    its time and error, retries by support, and the full traceback last."""
    services = services_or_exit()
    try:
        details = support.job_details(services.redis, job_id)
    except JobNotFoundError as error:
        raise click.ClickException(str(error)) from None
    summary = details.summary
    fields = [
        ("Job", summary.id),
        ("Status", f"{summary.kind} (queue {summary.queue})"),
        ("Reason", summary.reason),
        ("Step", summary.step),
        ("Person", _text(summary.person_id)),
        ("Function", details.function),
    ]
    fields += [("Arguments" if i == 0 else "", f"{name} = {value}")
               for i, (name, value) in enumerate(details.arguments)]
    fields += [(label, readable(moment) + " UTC") for label, moment in (
        ("Created", details.created_at), ("Enqueued", details.enqueued_at),
        ("Started", details.started_at), ("Ended", details.ended_at)) if moment]
    if summary.kind == support.SCHEDULED and summary.when:
        fields.append(("Runs next", readable(summary.when) + " UTC"))
    if details.result is not None:
        fields.append(("Result", details.result))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label:<{width}}  {value}")

    click.echo(f"\nAttempts ({len(details.attempts)})")
    if not details.attempts:
        click.echo("  none failed")
    for number, attempt in enumerate(details.attempts, 1):
        click.echo(f"  {number}. {attempt.at} UTC  {attempt.error}")
    if details.support_retries:
        click.echo("\nRetried by support")
        for retry in details.support_retries:
            click.echo(f"  {retry.get('at', '?')} UTC  by {retry.get('by', '?')}")
    click.echo("\nTraceback of the last attempt")
    click.echo(details.traceback.rstrip() if details.traceback else "  none recorded")


@jobs.command("retry")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "retry_all", is_flag=True, help="Every failed job (of --person, if given).")
@click.option("--person", "person_id", type=int, metavar="ID",
              help="Every failed job about this CRM person.")
@click.option("--dry-run", is_flag=True,
              help="Read the CRM and print what each job would write and send now; change "
                   "nothing.")
@click.option("--as", "actor", metavar="NAME",
              help="Who retries, for the consent ledger (default: your operating-system user).")
def retry_command(job_ids: tuple[str, ...], retry_all: bool, person_id: int | None,
                  dry_run: bool, actor: str | None):
    """Retry failed jobs: the IDs given, --all, or all of --person.

    The jobs go back on their queue. Each retry is recorded in the consent ledger of the
    person concerned (action support.retry, with the job, its step, who ran it and when).
    The job gets its usual retries again. With --dry-run nothing is queued or recorded:
    the CRM is read and the writes and mail each job would make now are printed.
    """
    if job_ids and (retry_all or person_id is not None):
        raise click.UsageError("give job IDs, or --all / --person, not both")
    if not job_ids and not retry_all and person_id is None:
        raise click.UsageError("give the IDs of the jobs to retry, or --all, or --person ID")
    services = services_or_exit()
    try:
        failed = support.find_failed(services.redis, job_ids, person_id=person_id)
    except (JobNotFoundError, JobNotFailedError) as error:
        raise click.ClickException(str(error)) from None
    if not failed:
        about = f" for person {person_id}" if person_id is not None else ""
        click.echo(f"No failed jobs{about}: nothing to retry.")
        return

    if dry_run:
        for job in failed:
            _echo_plan(plan(services, job))
        click.echo("\nDry run: nothing was queued, written, sent or recorded.")
        return

    actor = actor or support.default_actor()
    done = 0
    for job in failed:
        try:
            support.requeue(services.redis, services.ledger, job, actor)
        except JobNotFailedError as error:
            click.echo(f"skipped: {error}", err=True)
            continue
        except sqlalchemy.exc.OperationalError as error:
            click.echo(f"stopped: {unreachable_reason(error)}; {job.id} and the jobs after it "
                       f"were not queued again (a retry is recorded in the ledger first)",
                       err=True)
            break
        done += 1
        person = support.person_of(job)
        click.echo(f"queued again: {job.id} ({support.step_of(job)} for person {person}); "
                   f"recorded in the person's ledger as retried by {actor}")
    click.echo(f"{done} job(s) queued again.")
    if done < len(failed):
        raise SystemExit(1)


@jobs.command("purge")
@click.option("--older-than", "older_than", required=True, metavar="DURATION",
              help="e.g. 30d, 12h, 45m (units s, m, h, d, w).")
def purge_command(older_than: str):
    """Delete failed jobs older than --older-than.

    Failed jobs are kept 90 days otherwise. What happened to the person stays in their
    consent ledger."""
    try:
        age = parse_duration(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    services = services_or_exit()
    purged = support.purge_failed(services.redis, age)
    if not purged:
        click.echo(f"No failed jobs older than {older_than}.")
        return
    for job in purged:
        click.echo(f"deleted {job.id} ({job.step} for person {_text(job.person_id)}, "
                   f"failed {readable(job.failed_at)} UTC)")
    click.echo(f"{len(purged)} failed job(s) older than {older_than} deleted.")


def _echo_plan(dry_run: Plan) -> None:
    click.echo(f"{dry_run.job_id} ({dry_run.step} for person {_text(dry_run.person_id)}), "
               f"if run now:")
    if dry_run.problem:
        click.echo(f"  {dry_run.problem}")
        return
    if not dry_run.writes:
        click.echo("  would write nothing to the CRM")
    for write in dry_run.writes:
        click.echo(f"  would write {write.purpose}: legal basis {write.legal_basis}, "
                   f"source {write.source}, comment \"{write.comment}\"")
    for change in dry_run.changes:
        click.echo(f"  {change}")
    if dry_run.mail:
        click.echo(f"  {dry_run.mail}")


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def _text(value) -> str:
    return "-" if value is None else str(value)


def _or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
