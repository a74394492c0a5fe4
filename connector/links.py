"""Signed, expiring personal links. A token names one person and carries a random id that
the ledger records as proof of which link was used. Several SECRET_KEYs may be configured
for rotation: the first signs, all verify."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from connector.exceptions import TokenError
from connector.times import now

SALT = "consent-connector.person-page"


@dataclass(frozen=True)
class LinkToken:
    """What a valid token says."""

    person_id: int
    token_id: str


@dataclass(frozen=True)
class PersonalLink:
    """A freshly made link with when it stops working."""

    url: str
    token_id: str
    expires: datetime

    @property
    def export_url(self) -> str:
        """Where the person downloads their own export (the page's ``/export``)."""
        return f"{self.url}/export"


class LinkSigner:
    """Makes and reads personal-page tokens."""

    def __init__(self, secret_keys: tuple[str, ...], max_age_days: int):
        # itsdangerous signs with the last key and verifies with all: newest goes last.
        self.serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=SALT)
        self.max_age = timedelta(days=max_age_days)

    def make_link(self, base_url: str, person_id: int) -> PersonalLink:
        """Return a signed link to ``person_id``'s page under ``base_url``."""
        token_id = secrets.token_urlsafe(9)
        token = self.serializer.dumps({"p": person_id, "t": token_id})
        return PersonalLink(url=f"{base_url}/p/{token}", token_id=token_id,
                            expires=now() + self.max_age)

    def read(self, token: str) -> LinkToken:
        """Check a token and return what it names.

        Raises:
            TokenError: tampered, malformed (``expired=False``) or too old (``expired=True``).
        """
        try:
            data = self.serializer.loads(token, max_age=self.max_age.total_seconds())
        except SignatureExpired as expired:
            # The signature is ours, only too old: the payload names the person.
            data = _link_data(self.serializer.load_payload(expired.payload))
            raise TokenError("link expired", expired=True,
                             person_id=data.person_id if data else None) from None
        except BadSignature:
            raise TokenError("link is not valid") from None
        link = _link_data(data)
        if link is None:
            raise TokenError("link is not valid")
        return link


def _link_data(data) -> LinkToken | None:
    if not isinstance(data, dict) or not isinstance(data.get("p"), int):
        return None
    return LinkToken(person_id=data["p"], token_id=str(data.get("t", "")))


UNSUBSCRIBE_SALT = "consent-connector.one-click-unsubscribe"


@dataclass(frozen=True)
class UnsubscribeToken:
    """What a valid one-click unsubscribe token says: the person and the subscription."""

    person_id: int
    subscription: str


class UnsubscribeSigner:
    """Makes and reads the one-click unsubscribe links placed in mailings
    (``List-Unsubscribe: <PUBLIC_BASE_URL/u/<token>>``, RFC 8058).

    Signed with the same SECRET_KEYs as the personal links but under their own salt, so neither
    kind of token is accepted as the other. They do not expire: a mailing is read weeks or
    months after it was sent, and an unsubscribe link must work whenever the person uses it
    (RFC 8058, and the large mailbox providers' sender rules, expect that). That is safe
    because such a link can only ever switch one subscription *off* for one person; it shows
    nothing about them and cannot subscribe. Rotating SECRET_KEY (dropping the old key) is the
    way to invalidate all of them at once.
    """

    def __init__(self, secret_keys: tuple[str, ...]):
        # itsdangerous signs with the last key and verifies with all: newest goes last.
        self.serializer = URLSafeSerializer(list(reversed(secret_keys)), salt=UNSUBSCRIBE_SALT)

    def make_token(self, person_id: int, subscription: str) -> str:
        """Return the token for ``person_id``'s ``subscription`` (a config subscription key)."""
        return self.serializer.dumps({"p": int(person_id), "s": subscription})

    def make_link(self, base_url: str, person_id: int, subscription: str) -> str:
        """Return ``{base_url}/u/<token>``, the link for a mailing's List-Unsubscribe header."""
        return f"{base_url.rstrip('/')}/u/{self.make_token(person_id, subscription)}"

    def read(self, token: str) -> UnsubscribeToken:
        """Check a token and return what it names.

        Raises:
            TokenError: tampered or malformed.
        """
        try:
            data = self.serializer.loads(token)
        except BadSignature:
            raise TokenError("link is not valid") from None
        if (not isinstance(data, dict) or not isinstance(data.get("p"), int)
                or isinstance(data.get("p"), bool) or not isinstance(data.get("s"), str)):
            raise TokenError("link is not valid")
        return UnsubscribeToken(person_id=data["p"], subscription=data["s"])
