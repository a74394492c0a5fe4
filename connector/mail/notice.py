"""The mail that asks a person who agreed to an older consent text to read the new one: which
purpose, the new text with its version, that their consent stays until they act, and a fresh
link to their page, in their language.

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
"""

from datetime import datetime
from email.message import EmailMessage

from connector import i18n
from connector.consent import ConsentConfig, Purpose, pick_text
from connector.crm.types import Person
from connector.mail.message import link_expiry, new_message, set_plain_text


def render_new_notice(config: ConsentConfig, person: Person, purpose: Purpose,
                      agreed_version: str | None, link: str, link_expires: datetime,
                      sender: str) -> EmailMessage:
    """Build the mail about ``purpose``'s new notice text (``purpose.notice``).

    Args:
        config: the purposes config (languages, the controller who signs).
        person: the recipient; their language picks the texts.
        purpose: a purpose with a notice.
        agreed_version: the version the person agreed to; None when none was recorded.
        link: a fresh personal link to their page; ``link_expires`` when it stops working.
        sender: the From header, e.g. ``"Acme privacy <privacy@acme.example>"``.

    Raises:
        ValueError: the person has no email address, or ``sender`` is not an address.
    """
    language = i18n.language_for(config, person.language)
    texts = i18n.texts("mail", language)
    name = pick_text(purpose.name, language)
    message = new_message(person, sender, texts["new_notice_subject"].format(purpose=name))
    changed = texts["new_notice_changed"].format(purpose=name, old=agreed_version or "–",
                                                 new=purpose.notice.version)
    set_plain_text(message, texts, person, config, language, changed,
                   f"  {pick_text(purpose.notice.text, language)}", texts["new_notice_stays"],
                   link, link_expiry(texts, link_expires, language))
    return message
