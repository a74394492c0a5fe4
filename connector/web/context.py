"""How a request reaches the process's services (in the style of the Flask tutorial's
``get_db()``): the app factory stores them in ``app.extensions``."""

from flask import current_app

from connector.services import Services

EXTENSION = "connector"


def get_services() -> Services:
    """The services of the app handling the current request."""
    return current_app.extensions[EXTENSION]
