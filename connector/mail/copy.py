"""The mail that brings a person the copy of their data they asked for on their page (GDPR
Art. 15(3)): a short text in their language and the export's workbook attached.

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
"""

from email.message import EmailMessage

from connector import i18n
from connector.consent import ConsentConfig
from connector.crm.types import Person
from connector.exports.workbook import MIME_TYPE
from connector.mail.message import greeting, new_message, signature


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
    texts = i18n.texts("mail", language)
    message = new_message(person, sender, texts["copy_subject"])
    message.set_content(f"{greeting(texts, person)}\n\n{texts['copy_text']}"
                        f"{signature(texts, config)}\n")
    maintype, subtype = MIME_TYPE.split("/", 1)
    message.add_attachment(workbook, maintype=maintype, subtype=subtype, filename=filename)
    message["Content-Language"] = language
    return message
