"""One-click unsubscribe tokens: signed like the page links, under their own salt, no expiry."""

import pytest

from connector.exceptions import TokenError
from connector.links import LinkSigner, UnsubscribeSigner

KEYS = ("new-secret-key-0123456789", "old-secret-key-0123456789")


def test_a_token_names_the_person_and_the_subscription():
    signer = UnsubscribeSigner(KEYS)
    link = signer.make_link("https://consent.example.com/", 12, "newsletter")
    assert link.startswith("https://consent.example.com/u/")
    token = signer.read(link.rsplit("/", 1)[1])
    assert (token.person_id, token.subscription) == (12, "newsletter")


def test_an_old_key_still_verifies_during_rotation():
    token = UnsubscribeSigner(KEYS[1:]).make_token(3, "events")
    assert UnsubscribeSigner(KEYS).read(token).person_id == 3


def test_a_tampered_token_is_refused():
    token = UnsubscribeSigner(KEYS).make_token(12, "newsletter")
    with pytest.raises(TokenError):
        UnsubscribeSigner(KEYS).read(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])


def test_page_links_and_unsubscribe_links_are_not_interchangeable():
    page_token = LinkSigner(KEYS, 21).make_link("https://x", 12).url.rsplit("/", 1)[1]
    unsubscribe_token = UnsubscribeSigner(KEYS).make_token(12, "newsletter")
    with pytest.raises(TokenError):
        UnsubscribeSigner(KEYS).read(page_token)
    with pytest.raises(TokenError):
        LinkSigner(KEYS, 21).read(unsubscribe_token)
