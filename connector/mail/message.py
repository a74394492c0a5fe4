"""What every mail the connector writes to a person shares: the policy it is built with, its
envelope headers, the greeting and the controller's signature.

Privacy: nothing here logs, or puts into an exception message, a person's address or name.
"""

from collections.abc import Mapping
from datetime import datetime
from email import headerregistry, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from connector import i18n
from connector.consent import ConsentConfig
from connector.crm.types import Person
from connector.emails import sender_domain, single_address
from connector.times import now


class _HeaderClasses(headerregistry.HeaderRegistry):
    """The standard header registry, keeping the class it makes for each header name:
    CPython's makes a new class for every header it parses (about 30 µs each, some thirty
    per mail)."""

    def __init__(self):
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


MAIL_POLICY = policy.SMTP.clone(header_factory=_HeaderClasses())
"""SMTP's policy (CRLF, RFC 5322 headers) with the header classes kept."""


def new_message(person: Person, sender: str, subject: str,
                message_id: str | None = None) -> EmailMessage:
    """An empty mail to the person's one address: From, To, Subject, Date, Message-ID (a new
    one when None) and the headers that ask for no automatic replies. Set its content, then
    ``Content-Language`` (set_content drops Content-* headers).

    Raises:
        ValueError: the person has no email address, or ``sender`` is not an address.
    """
    if not person.email:
        raise ValueError("person has no email address: cannot write them a mail")
    domain = sender_domain(sender)
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = sender
    message["To"] = single_address(person.email)
    message["Subject"] = subject
    message["Date"] = format_datetime(now())
    message["Message-ID"] = message_id or make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message["X-Auto-Response-Suppress"] = "All"    # the same, for Exchange
    return message


def greeting(texts: Mapping[str, str], person: Person) -> str:
    """"Dear Kari," by the first name, or the neutral greeting of the mail's ``texts``."""
    first_name = (person.first_name or "").strip()
    return (texts["greeting"].format(name=first_name) if first_name
            else texts["greeting_anonymous"])


def signature(texts: Mapping[str, str], config: ConsentConfig) -> str:
    """The closing and the controller's name, after a blank line; "" without a controller."""
    return f"\n\n{texts['closing']}\n{config.controller.name}" if config.controller else ""


def link_expiry(texts: Mapping[str, str], expires: datetime, language: str) -> str:
    """"This link is personal and valid until 21 December 2026 …", in ``language``."""
    return texts["link_expiry"].format(date=i18n.format_date(expires, language))


def set_plain_text(message: EmailMessage, texts: Mapping[str, str], person: Person,
                   config: ConsentConfig, language: str, *paragraphs: str) -> None:
    """Give a mail without attachments its text: the greeting, ``paragraphs`` a blank line
    apart, the signature; then its ``Content-Language`` (set_content drops Content-*)."""
    message.set_content(f"{greeting(texts, person)}\n\n" + "\n\n".join(paragraphs)
                        + f"{signature(texts, config)}\n")
    message["Content-Language"] = language
