"""``GET /admin/export/<person_id>?format=xlsx|json``: one person's export for support staff,
the same file ``consent-connector export PERSON_ID`` writes. Behind ADMIN_TOKEN (admin_auth).

Answers: 200 with the file as an attachment; 400 for an unknown format; 404 when the person
does not exist (or ADMIN_TOKEN is not configured); 401 without the token; 503 when the CRM or
Redis cannot be read right now (with Retry-After when the CRM gave one), 502 when the CRM
refused for good (e.g. the connector's credentials).
"""

import sqlalchemy.exc
from flask import Blueprint, Response, abort, request

from connector.exceptions import CRMError, PersonNotFoundError
from connector.exports.formats import FORMATS, served
from connector.exports.report import gather_report
from connector.web.admin_auth import admin_actor, check_admin
from connector.web.context import get_services

bp = Blueprint("exports", __name__, url_prefix="/admin/export")
bp.before_request(check_admin)


@bp.get("/<int:person_id>")
def export_person(person_id: int):
    """The person's consents and history as .xlsx (default) or JSON, as an attachment."""
    fmt = request.args.get("format", "xlsx").strip().lower()
    if fmt not in FORMATS:
        abort(400, f"unknown format {fmt!r}: use xlsx or json")
    services = get_services()
    try:
        report = gather_report(services.crm, services.ledger, services.config, person_id,
                               exported_by=admin_actor(),
                               connector_associate_id=services.settings.associate_id)
    except PersonNotFoundError:
        abort(404, f"person {person_id} does not exist in the CRM")
    except CRMError as error:
        headers = {"Retry-After": f"{error.retry_after:.0f}"} if error.retry_after else {}
        status = 502 if error.permanent else 503
        return Response(f"export not possible now: {error}\n", status,
                        {**headers, "Content-Type": "text/plain; charset=utf-8"})
    except sqlalchemy.exc.SQLAlchemyError:
        return Response("export not possible now: the consent ledger (the evidence database) "
                        "is unreachable\n",
                        503, {"Retry-After": "30", "Content-Type": "text/plain; charset=utf-8"})
    body, headers = served(report, fmt)
    return Response(body, 200, headers)
