"""An edited purposes file reaches running workers and web processes without a restart; an
invalid edit is refused with file and line, and the last good config stays in force."""

import pytest
from rq.job import JobStatus

from connector.web.app import create_app
from connector.settings import Settings
from tests.conftest import (new_event_id, own_database, start_worker, stop_worker,
                            wait_for)
from tests.factories import edit_file, shipped_config_copy
from connector.queueing import enqueue_event

pytestmark = pytest.mark.integration
RENAMED = "{en: Customer care,"


@pytest.fixture
def config_file(tmp_path):
    return shipped_config_copy(tmp_path)


def test_a_running_worker_picks_up_edits_and_refuses_bad_ones(sandbox, connector_env, config_file,
                                                             tmp_path):
    env, own_db = own_database(connector_env, 12, CONSENT_CONFIG=str(config_file),
                               DATA_DIR=str(tmp_path))
    settings = Settings.from_env(env)
    worker = start_worker(env)

    def onboard_comment(name):
        person_id = sandbox.create_person(name, "Reload", None)
        job = enqueue_event(own_db, settings, "onboard", person_id, new_event_id())
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, what="onboarding")
        return sandbox.consents(person_id)["STORE"]["Comment"]

    try:
        assert "Sales and service" in onboard_comment("Before")
        edit_file(config_file, "{en: Sales and service,", RENAMED)
        assert "Customer care" in onboard_comment("After")
        edit_file(config_file, "legal_basis: legitimate_interest", "legal_basis: legitimate_intrest")
        assert "Customer care" in onboard_comment("Broken")  # the last good config
    finally:
        stop_worker(worker)
    line = next(n for n, text in enumerate(config_file.read_text().splitlines(), 1)
                if "legitimate_intrest" in text)
    log = worker.log_path.read_text()
    assert "config.reloaded" in log
    assert "config.rejected" in log and f"{config_file}:{line}:" in log


def test_the_web_process_picks_up_edits(connector_env, redis_conn, config_file):
    app = create_app(Settings.from_env(connector_env | {"CONSENT_CONFIG": str(config_file)}),
                     connection=redis_conn)
    live = app.extensions["connector"].live_config
    live.check_every = 0
    assert app.extensions["connector"].config.purposes["sales_and_service"].name["en"] == \
        "Sales and service"
    edit_file(config_file, "{en: Sales and service,", RENAMED)
    assert app.extensions["connector"].config.purposes["sales_and_service"].name["en"] == \
        "Customer care"

