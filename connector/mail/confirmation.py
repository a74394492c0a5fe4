"""The confirmation mail (GDPR Art. 13/14, "right to be informed"): what we record about the
person, why and from where, with the link to their page, as text + HTML in their language.

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
"""

import hashlib
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import jinja2

from connector import i18n
from connector.consent import ACTIVE, NOT_GIVEN, WITHDRAWN, ConsentConfig, describe_purposes
from connector.crm.types import ConsentRecord, Person
from connector.emails import sender_domain
from connector.mail.message import greeting, link_expiry, new_message

TEMPLATES_DIR = Path(__file__).parent / "templates"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def confirmation_message_id(person_id: int, sender: str, installation: str) -> str:
    """The Message-ID of a person's one confirmation mail: the same for every attempt, so a mail
    sent again after an interrupted send is the same message to the recipient's mail program.
    ``installation`` (e.g. PUBLIC_BASE_URL) keeps two tenants' persons of the same id apart."""
    digest = hashlib.sha256(installation.encode()).hexdigest()[:10]
    return f"<confirmation.{person_id}.{digest}@{sender_domain(sender)}>"


def render_confirmation(config: ConsentConfig, person: Person, consents: Sequence[ConsentRecord],
                        link: str, link_expires: datetime, sender: str,
                        company: str | None = None,
                        message_id: str | None = None,
                        export_link: str | None = None) -> EmailMessage:
    """Build the mail that tells a person what we record about them, why, and from where.

    Args:
        config: the validated purposes config (names, explanations, languages).
        person: the recipient; their first name greets them, their language picks the texts.
        consents: the person's consent rows as the CRM holds them (CRM keys).
        link: the personal link to their subscription page.
        link_expires: when the link stops working; shown as a date in the mail's language.
        sender: the From header, e.g. ``"Acme privacy <privacy@acme.example>"``.
        company: the name for the intro and signature; the config's controller when None
            (left out when the config names none).
        message_id: the Message-ID (``confirmation_message_id``); a new one when None.
        export_link: where the person downloads a copy of their data (the personal
            link's ``export_url``); left out when None.

    Returns:
        A multipart/alternative message (text, then HTML) with policy SMTP, ready to deliver.

    Raises:
        ValueError: the person has no email address, or ``sender`` is not an address.
    """
    language = i18n.language_for(config, person.language)
    texts = i18n.texts("mail", language)
    message = new_message(person, sender, texts["subject"], message_id)
    views = describe_purposes(config, consents, language)
    controller = config.controller
    company = company or (controller.name if controller else None)
    context = {
        "lang": language,
        "t": texts,
        "greeting": greeting(texts, person),
        "intro_registered": (texts["intro_registered_company"].format(company=company) if company
                             else texts["intro_registered"]),
        "company": company,
        "recorded": [view for view in views if view.status == ACTIVE],
        "withdrawn": [view for view in views if view.status == WITHDRAWN],
        "not_given": [view for view in views if view.status == NOT_GIVEN],
        "link": link,
        "export_link": export_link,
        "r": i18n.texts("rights", language),
        "rights": i18n.RIGHTS,
        "controller": controller,
        "link_expiry": link_expiry(texts, link_expires, language),
    }
    text = _environment.get_template("confirmation.txt").render(context)
    html = _environment.get_template("confirmation.html").render(context)

    message.set_content(text)
    message.add_alternative(html, subtype="html")
    message["Content-Language"] = language  # after set_content, which drops Content-* headers
    return message
