"""Email addresses: finding them in text (to keep them out of logs, job reasons and error
messages) and reading the sender's domain. One pattern for the whole connector."""

import re
from email.utils import parseaddr

EMAIL = re.compile(r"([\w.!#$%*+^~-]+)(?:@|%40)[\w-]+(?:\.[\w-]+)+")
"""An email address, also URL-encoded (``%40``); ``\\w`` includes non-ASCII letters. Group 1 is
the part before the ``@``."""


def hide_emails(text: str | None, replacement: str = "<email>") -> str:
    """Return ``text`` with every email address replaced by ``replacement``."""
    return EMAIL.sub(replacement, text or "")


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
