"""The re-permission mail: a consent to a purpose with ``consent_valid_for`` is about to
lapse; the person is asked, in their language, whether they would like it to continue, with
the text they agree to when they renew and a fresh link to their page.

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
"""

from datetime import datetime
from email.message import EmailMessage

from connector import i18n
from connector.consent import ConsentConfig, Purpose, pick_text
from connector.crm.types import Person
from connector.mail.message import link_expiry, new_message, set_plain_text


def render_repermission(config: ConsentConfig, person: Person, purpose: Purpose,
                        given: datetime, lapses_on: datetime, link: str,
                        link_expires: datetime, sender: str) -> EmailMessage:
    """Build the mail asking the person to renew their consent to ``purpose``.

    Args:
        config: the purposes config (languages, the controller who signs).
        person: the recipient; their language picks the texts.
        purpose: a purpose with a notice and an expiry.
        given: when the consent was given or last renewed; ``lapses_on`` when it lapses.
        link: a fresh personal link to their page; ``link_expires`` when it stops working.
        sender: the From header, e.g. ``"Acme privacy <privacy@acme.example>"``.

    Raises:
        ValueError: the person has no email address, or ``sender`` is not an address.
    """
    language = i18n.language_for(config, person.language)
    texts = i18n.texts("mail", language)
    name = pick_text(purpose.name, language)
    ends = i18n.format_date(lapses_on, language)
    message = new_message(person, sender, texts["repermission_subject"].format(purpose=name))
    asked = texts["repermission_text"].format(
        purpose=name, given=i18n.format_date(given, language), ends=ends)
    notice = () if purpose.notice is None else (
        texts["repermission_notice"].format(version=purpose.notice.version),
        f"  {pick_text(purpose.notice.text, language)}")
    set_plain_text(message, texts, person, config, language, asked, link, *notice,
                   texts["repermission_lapse"].format(ends=ends),
                   link_expiry(texts, link_expires, language))
    return message
