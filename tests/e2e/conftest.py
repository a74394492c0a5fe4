"""Browser fixtures: the connector's web app served over HTTP and Debian's chromium driven by
Playwright (.ci/run installs chromium; Playwright's own browser download is not used)."""

import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from connector.web.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="session")
def live_server(settings, redis_url):
    """The web app on a free port, talking to the session's Redis and sandbox CRM."""
    import redis

    app = create_app(settings, connection=redis.Redis.from_url(redis_url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: install it (apt-get install chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def output_dir():
    """Where screenshots go, for people to look at after a run."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT
