"""The person's page: GET /p/<token> shows what is recorded about them and why.

Read-only for now; the CRM's current state is read live on every visit. GET never changes
anything (mail scanners open links before people do).
"""

import logging

from flask import Blueprint, render_template

from connector.consent import choose_language, describe_purposes
from connector.exceptions import CRMError, PersonNotFoundError, TokenError

bp = Blueprint("person_page", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/page")
log = logging.getLogger(__name__)

STATUS_LABELS = {"active": "Active", "withdrawn": "Withdrawn", "not_given": "Not given",
                 "not_recorded": "Not recorded"}


@bp.get("/p/<token>")
def show(token: str):
    """Show the person's purposes and consents as the CRM holds them now."""
    from connector.app import web_context

    ctx = web_context()
    try:
        link = ctx.links.read(token)
        person = ctx.crm.get_person(link.person_id)
    except TokenError as error:
        if error.expired:
            return render_template("message.html", title="This link has expired",
                                   text="Personal links work for a limited time. Use the "
                                        "link in a newer mail from us."), 410
        return _not_valid()
    except PersonNotFoundError:
        return _not_valid()
    except CRMError as error:
        log.warning("page.crm_unavailable person_id=%s error=%s", link.person_id, error)
        return render_template("message.html", title="Please try again in a moment",
                               text="We could not fetch your details just now."), 503
    language = choose_language(ctx.config, person.language)
    views = describe_purposes(ctx.config, person.consents, language)
    return render_template("person.html", person=person, views=views, language=language,
                           status_labels=STATUS_LABELS)


def _not_valid():
    return render_template("message.html", title="This link is not valid",
                           text="Please use the link exactly as it is in our mail."), 404
