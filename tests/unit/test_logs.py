"""connector.logs: JSON lines with event names and fields, and the redaction safety net."""

import io
import json
import logging
import logging.config
import re
from datetime import datetime, timedelta, timezone

import pytest
from rq.logutils import setup_loghandlers

from connector.logs import (GUNICORN_ACCESS_LOG_FORMAT, RedactFilter, configure_logging,
                            gunicorn_logconfig, parse_message, redact)

TOUCHED = ("", "rq", "rq.worker", "rq.job", "gunicorn.error", "gunicorn.access", "werkzeug")


@pytest.fixture(autouse=True)
def restore_logging():
    """Give every logger this test touches back its handlers, level and propagation."""
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in TOUCHED}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def stream(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)
    return out


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_our_messages_become_events_with_fields(stream):
    before = datetime.now(timezone.utc)
    logging.getLogger("connector.webhooks.receiver").info(
        "webhook.queued event_id=%s person_id=%s job_id=%s", "5f0c-11", 123, "onboard-5f0c-11")
    [line] = lines(stream)
    assert list(line)[:4] == ["time", "level", "logger", "event"]
    assert line["level"] == "INFO"
    assert line["logger"] == "connector.webhooks.receiver"
    assert line["event"] == "webhook.queued"
    assert line["event_id"] == "5f0c-11"
    assert line["person_id"] == 123  # a number, not "123"
    assert line["job_id"] == "onboard-5f0c-11"
    assert line["message"] == "webhook.queued event_id=5f0c-11 person_id=123 job_id=onboard-5f0c-11"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    logged = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= logged <= datetime.now(timezone.utc)


def test_values_may_have_spaces_and_extra_fields_are_kept(stream):
    logging.getLogger("x").warning("webhook.ignored event_id=%s reason=%s", "e1",
                                   "caused by the connector's own associate",
                                   extra={"attempt": 2, "queue": "onboarding"})
    [line] = lines(stream)
    assert line["reason"] == "caused by the connector's own associate"
    assert line["attempt"] == 2 and line["queue"] == "onboarding"
    assert line["level"] == "WARNING"


def test_other_messages_are_plain_log_events(stream):
    logging.getLogger("rq.worker").info("Worker abc: onboarding: Job OK (onboard-1)")
    [line] = lines(stream)
    assert line["event"] == "log"
    assert line["message"] == "Worker abc: onboarding: Job OK (onboard-1)"
    assert set(line) == {"time", "level", "logger", "event", "message"}


def test_fields_never_replace_the_core_ones(stream):
    logging.getLogger("x").info("job.done level=low logger=me", extra={"event": "spoofed"})
    [line] = lines(stream)
    assert line["level"] == "INFO" and line["logger"] == "x" and line["event"] == "job.done"
    assert line["level_"] == "low" and line["logger_"] == "me" and line["event_"] == "spoofed"


@pytest.mark.parametrize("address", ["ada@example.com", "kåre.nordmann@eksempel.no",
                                     "first.last+tag@sub.example.co.uk", "ada%40example.com"])
def test_email_addresses_are_redacted_in_messages_fields_and_tracebacks(stream, address):
    log = logging.getLogger("connector.test")
    log.info("mail.failed to=%s", address, extra={"recipients": [address, {"cc": address}]})
    try:
        raise ValueError(f"550 5.1.1 <{address}>: no such user")
    except ValueError:
        log.exception("job.crashed job_id=j1")
    text = stream.getvalue()
    assert address not in text
    assert address.split("@")[0].split("%40")[0] not in text
    first, second = lines(stream)
    assert first["to"] == "<email>"
    assert first["recipients"] == ["<email>", {"cc": "<email>"}]
    assert "no such user" in second["exc_info"] and "<email>" in second["exc_info"]


def test_personal_link_tokens_are_redacted(stream):
    token = "eyJwIjoyLCJ0IjoiTVRORk1OcUgzTVFOIn0.awu1kg.eEMcZ4ZBx"
    logging.getLogger("x").info("mail.sent link=https://consent.example.com/p/%s", token)
    logging.getLogger("gunicorn.access").info("GET /p/%s/renew HTTP/1.1", token)
    text = stream.getvalue()
    assert token not in text
    assert lines(stream)[0]["link"] == "https://consent.example.com/p/<token>"
    assert lines(stream)[1]["message"] == "GET /p/<token>/renew HTTP/1.1"


def test_the_filter_alone_protects_a_handler_with_any_formatter():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s to=%(to)s"))
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("connector.filter-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("mail.refused address=%s", "ada@example.com",
                       extra={"to": "bob@example.org"})
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == "mail.refused address=<email> to=<email>\n"


def test_text_format_for_people_is_redacted_too(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "text")
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("connector.x").info("mail.sent to=%s", "ada@example.com")
    line = out.getvalue().strip()
    assert line.endswith("INFO connector.x mail.sent to=<email>")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_configuring_twice_keeps_one_handler_and_replaces_basic_config():
    logging.basicConfig()  # what the entry points did before
    configure_logging(stream=io.StringIO())
    handler = configure_logging(stream=io.StringIO())
    root = logging.getLogger()
    ours = [h for h in root.handlers if type(h) is logging.StreamHandler
            or getattr(h, "_connector", False)]
    assert ours == [handler]
    assert root.level == logging.INFO


def test_rq_worker_logs_go_through_our_handler(stream):
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if getattr(h, "_connector", False)]  # only ours
    setup_loghandlers("INFO", name="rq.worker")  # what Worker.work() runs first
    setup_loghandlers("INFO", name="rq.job")
    assert logging.getLogger("rq.worker").handlers == []
    logging.getLogger("rq.worker").info("Worker w1: started with PID %d, version %s", 42, "3.0")
    logging.getLogger("rq.job").info("Job %s: enqueued for retry, %s remaining", "j", 2)
    first, second = lines(stream)
    assert first["logger"] == "rq.worker" and first["message"].startswith("Worker w1: started")
    assert second["logger"] == "rq.job"


def test_configure_logging_takes_over_loggers_rq_already_set_up():
    logging.getLogger().handlers[:] = []  # nothing configured yet (the fixture restores them)
    setup_loghandlers("INFO", name="rq.worker")  # RQ first: its own handlers, no propagation
    assert logging.getLogger("rq.worker").handlers
    assert logging.getLogger("rq.worker").propagate is False
    out = io.StringIO()
    configure_logging(stream=out)
    logging.getLogger("rq.worker").info("Worker w1: %s", "ada@example.com")
    [line] = [json.loads(text) for text in out.getvalue().splitlines()]
    assert line["message"] == "Worker w1: <email>"


def test_gunicorn_logconfig_sends_access_lines_as_redacted_json(capsys, monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    logging.config.dictConfig(gunicorn_logconfig())
    atoms = {"m": "GET", "U": "/p/eyJwIjoyfQ.abc.def", "s": "200", "B": 512, "M": 7,
             "h": "203.0.113.9", "a": "Mozilla/5.0"}
    logging.getLogger("gunicorn.access").info(GUNICORN_ACCESS_LOG_FORMAT, atoms)
    logging.getLogger("gunicorn.error").info("Booting worker with pid: %s", 77)
    access, error = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert access["event"] == "http.request"
    assert access["method"] == "GET" and access["status"] == 200 and access["duration_ms"] == 7
    assert access["path"] == "/p/<token>"
    assert "203.0.113.9" not in json.dumps(access) and "Mozilla" not in json.dumps(access)
    assert error["logger"] == "gunicorn.error" and error["message"] == "Booting worker with pid: 77"


@pytest.mark.parametrize("message, expected", [
    ("webhook.rejected reason=bad_signature", ("webhook.rejected", {"reason": "bad_signature"})),
    ('config.rejected file=/x.yaml kept="abc def"', ("config.rejected",
                                                     {"file": "/x.yaml", "kept": "abc def"})),
    ("job.retry attempt=007 delay=-3", ("job.retry", {"attempt": "007", "delay": -3})),
    ("config.reloaded", ("config.reloaded", {})),
    ("Listening at: http://0.0.0.0:8000 (7)", ("log", {})),
    ("webhook.ignored some words first reason=x", ("webhook.ignored", {"reason": "x"})),
])
def test_parse_message(message, expected):
    assert parse_message(message) == expected


def test_message_ids_stay_so_logs_match_the_ledger_but_lookalike_addresses_go():
    from email.utils import make_msgid

    message_id = make_msgid(domain="example.com")
    assert redact(f"mail {message_id} accepted") == f"mail {message_id} accepted"
    assert redact("to 4712345678@sms.example.no") == "to <email>"
    assert redact("to 1.2.3@example.com") == "to <email>"


def test_redact_leaves_ordinary_text_alone():
    text = "job onboard-5f0c failed at 12:00 @ worker w1; see /Cust12345/person/2"
    assert redact(text) == text


def test_unsubscribe_link_tokens_are_redacted_like_page_tokens():
    from connector.logs import redact

    line = "http.request method=POST path=/u/eyJwIjoxMiwicyI6Im5ld3NsZXR0ZXIifQ.abc.def status=200"
    assert redact(line) == "http.request method=POST path=/u/<token> status=200"
    assert redact("GET /p/eyJwIjoxfQ.x.y?lang=nb") == "GET /p/<token>?lang=nb"


def test_job_arguments_that_rq_logs_on_failure_are_left_out(stream):
    configure_logging(stream=stream)
    logging.getLogger("rq.worker").error(
        "Worker w: job j: exception raised while executing (apply_preferences)",
        extra={"arguments": (12, {"e_marketing": True}, {"user_agent": "Mozilla/5.0 (Phone)",
                                                        "ip": "203.0.113.0/24 #1a2b"}),
               "kwargs": {}, "queue": "preferences"})
    line = stream.getvalue()
    assert "Mozilla" not in line and "203.0.113" not in line
    record = json.loads(line.splitlines()[-1])
    assert record["arguments"] == "(not logged)" and record["queue"] == "preferences"
