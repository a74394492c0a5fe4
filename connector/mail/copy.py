"""The mail that brings a person the copy of their data they asked for on their page (GDPR
Art. 15(3)): a short text in their language and the export's workbook attached.

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
"""

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from connector import i18n
from connector.consent import ConsentConfig
from connector.crm.types import Person
from connector.emails import sender_domain, single_address
from connector.exports.workbook import MIME_TYPE
from connector.mail.confirmation import MAIL_POLICY
from connector.times import now


def render_copy(config: ConsentConfig, person: Person, workbook: bytes, filename: str,
                sender: str, language: str) -> EmailMessage:
    """Build the mail with the person's export attached.

    Args:
        config: the purposes config (the controller who signs).
        person: the recipient, with their address on record.
        workbook: the export as .xlsx (connector.exports.workbook.render_workbook).
        filename: the attachment's name (connector.exports.report.export_filename).
        sender: the From header, e.g. ``"Acme privacy <privacy@acme.example>"``.
        language: the language the person asked in (their page's).

    Raises:
        ValueError: the person has no email address, or ``sender`` is not an address.
    """
    if not person.email:
        raise ValueError("person has no email address: cannot send a copy of their data")
    texts = i18n.texts("mail", language)
    first_name = (person.first_name or "").strip()
    greeting = (texts["greeting"].format(name=first_name) if first_name
                else texts["greeting_anonymous"])
    signature = f"\n\n{texts['closing']}\n{config.controller.name}" if config.controller else ""
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = sender
    message["To"] = single_address(person.email)
    message["Subject"] = texts["copy_subject"]
    message["Date"] = format_datetime(now())
    message["Message-ID"] = make_msgid(domain=sender_domain(sender))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(f"{greeting}\n\n{texts['copy_text']}{signature}\n")
    maintype, subtype = MIME_TYPE.split("/", 1)
    message.add_attachment(workbook, maintype=maintype, subtype=subtype, filename=filename)
    message["Content-Language"] = language
    return message
