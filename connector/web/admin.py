"""The admin area (/admin/...) for support staff, behind ADMIN_TOKEN (see admin_auth).

- ``/admin/``: failed jobs with the person, step, attempts, when and why, a Retry button per
  job and Retry all; below, jobs waiting for a retry and jobs running now.
- ``/admin/jobs/<id>``: everything known about one job (connector.support.jobs.job_details).
- ``/admin/persons/<id>`` (and ``/admin/persons?id=``, the lookup form): one person as the
  CRM holds them now (their consents), their consent ledger, their waiting and failed jobs,
  and the export buttons.
- ``/admin/status``: what ``consent-connector status`` says (connector.support.status_report).
- ``/admin/rq/``: rq-dashboard, behind the same auth and read-only: retrying there would
  not be recorded in the person's consent ledger, so its requeue, delete, empty and compact
  actions answer 403 and point here.

Retries made here are recorded in the consent ledger like the command's, with the actor
"<basic-auth user name> (admin page)", or "admin (ADMIN_TOKEN)" for a bearer token.
"""

import base64
import hashlib
import re

import redis
import rq_dashboard
from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   url_for)
from sqlalchemy.exc import SQLAlchemyError

from connector.consent import describe_purposes
from connector.exceptions import (CRMError, JobNotFailedError, JobNotFoundError,
                                  PersonNotFoundError)
from connector.support import jobs as support
from connector.support.status_report import report
from connector.web.admin_auth import admin_actor, check_admin
from connector.web.context import EXTENSION, get_services

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(check_admin)

RQ_DASHBOARD_PREFIX = "/admin/rq"
RQ_DASHBOARD_CSP = ("default-src 'none'; script-src {script_src}; "
                    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
"""What rq-dashboard's pages need: their one inline script (allowed by its SHA-256, computed
per response, never 'unsafe-inline'), 'unsafe-eval' for the underscore.js templates that
draw its tables, inline styles, and XHR to its JSON. Its templates put job data into the page
unescaped (description, metadata, traceback, call string): without 'unsafe-inline' for
scripts, markup smuggled in there (e.g. through a User-Agent in a job's arguments) cannot run."""

_INLINE_SCRIPT = re.compile(
    rb"<script(?![^>]*\bsrc=)(?![^>]*\btype=\"text/template\")[^>]*>(.*?)</script>", re.S | re.I)

RQ_DASHBOARD_READ_ONLY = frozenset({"requeue_job_view", "requeue_all", "delete_job_view",
                                    "empty_queue", "compact_queue"})
"""rq-dashboard's endpoints that change jobs; refused (see the module docstring)."""


@bp.get("/")
def jobs_page():
    """Failed jobs with their reasons and Retry buttons; waiting and running jobs below."""
    summaries = support.list_jobs(_redis())
    by_kind = {kind: [s for s in summaries if s.kind == kind] for kind in support.KINDS}
    return render_template("admin/jobs.html", failed=by_kind[support.FAILED],
                           scheduled=by_kind[support.SCHEDULED], started=by_kind[support.STARTED])


@bp.get("/persons")
def find_person():
    """The lookup form's target: the person's page, or the jobs page saying what is wrong."""
    wanted = request.args.get("id", "").strip()
    if not wanted.isdigit() or int(wanted) < 1:
        flash(f"{wanted!r} is not a person id: use the number in the CRM's person card.",
              "warning")
        return redirect(url_for(".jobs_page"), code=303)
    return redirect(url_for(".person_page", person_id=int(wanted)), code=303)


@bp.get("/persons/<int:person_id>")
def person_page(person_id: int):
    """One person: their consents as the CRM holds them now, their consent ledger, their
    waiting and failed jobs, and the export buttons. Each part that cannot be read now says
    so; the others still show."""
    services = get_services()
    person = crm_problem = None
    try:
        person = services.crm.get_person(person_id)
    except PersonNotFoundError:
        crm_problem = f"person {person_id} does not exist in the CRM"
    except CRMError as error:
        crm_problem = f"the CRM cannot be read now: {error}"
    try:
        entries, ledger_problem = services.ledger.entries(person_id), None
    except SQLAlchemyError:
        entries, ledger_problem = [], "the consent ledger (the evidence database) does not answer"
    try:
        jobs, jobs_problem = support.list_jobs(services.redis, person_id=person_id), None
    except redis.RedisError:
        jobs, jobs_problem = [], "Redis does not answer"
    if person is None and not entries and not jobs and not jobs_problem and not ledger_problem:
        abort(404, crm_problem)
    views = describe_purposes(services.config, person.consents, "en") if person else []
    return render_template("admin/person.html", person_id=person_id, person=person,
                           views=views, crm_problem=crm_problem, entries=entries,
                           ledger_problem=ledger_problem, jobs=jobs, jobs_problem=jobs_problem)


@bp.get("/status")
def status_page():
    """What ``consent-connector status`` says, section by section."""
    sections, attention = report(get_services())
    return render_template("admin/status.html", sections=sections, attention=attention)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    """Everything known about one job, the traceback last."""
    try:
        details = support.job_details(_redis(), job_id)
    except JobNotFoundError as error:
        abort(404, str(error))
    return render_template("admin/job.html", job=details)


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    """Requeue one failed job and record the retry in the person's ledger."""
    services = get_services()
    try:
        [job] = support.find_failed(services.redis, [job_id])
        support.requeue(services.redis, services.ledger, job, admin_actor())
    except JobNotFoundError as error:
        abort(404, str(error))
    except JobNotFailedError as error:
        flash(str(error), "warning")
    except SQLAlchemyError:
        flash(LEDGER_UNREACHABLE, "warning")
    else:
        flash(f"Job {job.id} ({support.step_of(job)} for person {support.person_of(job)}) is "
              f"queued again. The retry is recorded in the person's consent ledger.", "success")
    return redirect(url_for(".jobs_page"), code=303)


@bp.post("/jobs/retry-all")
def retry_all():
    """Requeue every failed job, recording each retry in its person's ledger."""
    services = get_services()
    done = 0
    for job in support.find_failed(services.redis):
        try:
            support.requeue(services.redis, services.ledger, job, admin_actor())
        except JobNotFailedError:
            continue  # retried by someone else meanwhile
        except SQLAlchemyError:
            flash(LEDGER_UNREACHABLE, "warning")
            break
        done += 1
    flash(f"{done} failed job(s) queued again. Each retry is recorded in the person's consent "
          f"ledger." if done else "There were no failed jobs to retry.", "success")
    return redirect(url_for(".jobs_page"), code=303)


LEDGER_UNREACHABLE = ("The retry could not be recorded in the person's consent ledger (the "
                      "evidence database does not answer), so the job was not queued again. "
                      "Try again when the database is back.")


def _redis():
    return get_services().redis


# -- rq-dashboard under /admin/rq ---------------------------------------------------------------


@bp.record_once
def _mount_rq_dashboard(state) -> None:
    """Register rq-dashboard's blueprint on the app under /admin/rq, behind check_admin.

    Its templates name their endpoints ``rq_dashboard.*``, so it must be registered on the app
    itself (a blueprint nested in ``admin`` would be ``admin.rq_dashboard``); the admin
    checks are added to the app's hooks for that blueprint, before its own.
    """
    app = state.app
    services = app.extensions[EXTENSION]
    connection = services.redis
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL",
                          (services.settings.redis_url or _redis_url(connection),))
    app.config.setdefault("RQ_DASHBOARD_DISABLE_DELETE", True)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=RQ_DASHBOARD_PREFIX)
    app.redis_conn = connection
    hooks = app.before_request_funcs.setdefault(rq_dashboard.blueprint.name, [])
    hooks[:0] = [check_admin, _refuse_dashboard_changes]
    hooks.append(_use_connector_redis)  # after rq-dashboard's own, which connects by URL
    app.after_request_funcs.setdefault(rq_dashboard.blueprint.name, []).append(_dashboard_csp)


def _refuse_dashboard_changes():
    if request.endpoint and request.endpoint.split(".")[-1] in RQ_DASHBOARD_READ_ONLY:
        abort(403, "rq-dashboard is read-only here: retry failed jobs on /admin/, where the "
                   "retry is recorded in the person's consent ledger")


def _use_connector_redis():
    current_app.redis_conn = get_services().redis


def _dashboard_csp(response):
    script_src = ["'self'", "'unsafe-eval'"]
    if response.mimetype == "text/html" and not response.direct_passthrough:
        script_src += [f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
                       for script in _INLINE_SCRIPT.findall(response.get_data())]
    response.headers["Content-Security-Policy"] = RQ_DASHBOARD_CSP.format(
        script_src=" ".join(script_src))
    return response


def _redis_url(connection) -> str:
    """A URL naming ``connection`` (the embedded Redis, on a unix socket). rq-dashboard
    insists on a URL: it shows it (without credentials) and builds a client from it per
    request, which ``_use_connector_redis`` replaces before the view runs."""
    kwargs = connection.connection_pool.connection_kwargs
    db = kwargs.get("db") or 0
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
