"""The person's page: GET /p/<token> shows what is recorded about them and why.

Read-only for now; the CRM's current state is read live on every visit. GET never changes
anything (mail scanners open links before people do).
"""

import logging
from dataclasses import dataclass

from flask import Blueprint, render_template

from connector.consent import ConsentConfig, ConsentRecord, pick_text
from connector.crm import Person
from connector.exceptions import CRMError, PersonNotFoundError, TokenError

bp = Blueprint("person_page", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/page")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurposeRow:
    """One purpose as the page shows it, in the person's language."""

    name: str
    description: str
    status: str
    legal_basis: str
    legal_basis_description: str
    source: str
    since: str


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
    language = person.language if person.language in ctx.config.languages else "en"
    rows = purpose_rows(ctx.config, person, language)
    return render_template("person.html", person=person, rows=rows, language=language)


def purpose_rows(config: ConsentConfig, person: Person, language: str) -> list[PurposeRow]:
    """Describe every configured purpose, and any other the CRM holds, for the page."""
    by_purpose = {record.purpose: record for record in person.consents}
    rows = []
    for purpose in config.purposes.values():
        record = by_purpose.pop(purpose.crm_key, None)
        rows.append(_row(config, pick_text(purpose.name, language),
                         pick_text(purpose.description, language), record, language,
                         missing="Not given" if purpose.requires_consent else "Not recorded"))
    for record in by_purpose.values():
        rows.append(_row(config, record.purpose, "", record, language, missing=""))
    return rows


def _row(config: ConsentConfig, name: str, description: str, record: ConsentRecord | None,
         language: str, missing: str) -> PurposeRow:
    if record is None:
        return PurposeRow(name, description, missing, "", "", "", "")
    basis = config.legal_basis_by_crm_key(record.legal_basis)
    source = config.source_by_crm_key(record.source)
    withdrawn = basis is not None and basis.withdrawn
    return PurposeRow(
        name=name,
        description=description,
        status="Withdrawn" if withdrawn else "Active",
        legal_basis=pick_text(basis.name, language) if basis else record.legal_basis,
        legal_basis_description=pick_text(basis.description, language) if basis else "",
        source=pick_text(source.name, language) if source else record.source,
        since=record.registered.date().isoformat() if record.registered else "",
    )


def _not_valid():
    return render_template("message.html", title="This link is not valid",
                           text="Please use the link exactly as it is in our mail."), 404
