"""What the person's pages share, the personal page (/p/, page.py) and the one-click
unsubscribe (/u/, unsubscribe.py): the language they speak, the short message page (an
invalid link, a moment's trouble …) and the proof of a choice made on them."""

from flask import make_response, render_template, request

from connector import i18n
from connector.consent import ConsentConfig
from connector.proof import choice_proof
from connector.web.context import get_services


def page_languages(config: ConsentConfig) -> list[str]:
    """The configured languages the pages have words for (the page's language switch)."""
    return [code for code in config.languages if code in i18n.LANGUAGES]


def message_page(language: str, message: str, status: int, *,
                 renew_token: str | None = None, **values: str):
    """A short page with the title and sentence of ``message`` (e.g. ``invalid``), its button
    if it has one, and ``values`` filled into the sentence; ``renew_token`` makes the button
    ask for a fresh link."""
    texts = i18n.texts("page", language)
    text = texts[f"{message}_text"]
    page = render_template("message.html", t=texts, title=texts[f"{message}_title"],
                           text=text.format(**values) if values else text,
                           renew_token=renew_token, button=texts.get(f"{message}_button"),
                           language=language)
    return make_response(page, status)


def request_proof(token_id: str, **extra: str) -> dict[str, str]:
    """The proof of the choice this request makes (connector.proof.choice_proof)."""
    return choice_proof(token_id, request.headers.get("User-Agent"), request.remote_addr,
                        get_services().settings.secret_keys[0], **extra)
