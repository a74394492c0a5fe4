"""Email addresses: finding them in text (to keep them out of logs, job reasons and error
messages) and reading the sender's domain. One pattern for the whole connector."""

import re
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

EMAIL = re.compile(r"([\w.!#$%*+^~-]+)(?:@|%40)[\w-]+(?:\.[\w-]+)+")
"""An email address, also URL-encoded (``%40``); ``\\w`` includes non-ASCII letters. Group 1 is
the part before the ``@``."""


def hide_emails(text: str | None, replacement: str = "<email>") -> str:
    """Return ``text`` with every email address replaced by ``replacement``."""
    return EMAIL.sub(replacement, text or "")


def single_address(value: str) -> str:
    """Return ``value`` as exactly one valid email address (normalised by email-validator,
    no deliverability check), or raise ValueError saying plainly what is wrong with it, without
    quoting it: a CRM field holding ``a@example.com, b@example.org`` or a line break must
    never put a second recipient in a mail's envelope or headers.

    Raises:
        ValueError: the value holds a line break, several addresses, or no valid address.
    """
    if "\r" in value or "\n" in value:
        raise ValueError("it contains a line break")
    if value.count("@") > 1 or re.search(r"[,;]", value):
        raise ValueError("it holds more than one address")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"it is not a valid address ({error})") from None


def sender_domain(sender: str) -> str:
    """The domain of a From address such as ``Privacy <privacy@example.com>``.

    Raises:
        ValueError: ``sender`` is not an email address.
    """
    address = parseaddr(sender)[1]
    local, at, domain = address.rpartition("@")
    if not (local and at and domain):
        raise ValueError("sender must be an email address such as 'Privacy <privacy@example.com>'")
    return domain
