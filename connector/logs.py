"""Logging: one JSON object per line on stderr, with event names and ids, never an address.

Our messages start with an event name and carry ``key=value`` pairs::

    log.info("event.queued event_id=%s person_id=%s job_id=%s", event_id, person_id, job_id)

becomes (one line)::

    {"time": "2026-11-29T05:18:10.753Z", "level": "INFO",
     "logger": "connector.intake", "event": "event.queued", "event_id": "5f0c…",
     "person_id": 123, "job_id": "onboard-5f0c…",
     "message": "event.queued event_id=5f0c… person_id=123 job_id=onboard-5f0c…"}

A value runs up to the next `` key=``, so it may contain spaces; whole numbers become
numbers. Fields passed with ``extra=`` are added as they are. Messages from other
libraries (RQ, gunicorn, Flask) get ``"event": "log"`` and their text in ``message``.

A safety net redacts, in every message and field (tracebacks included), email addresses
(→ ``<email>``; Message-IDs made by make_msgid are left alone) and the token of personal
links (``/p/<token>``). It cannot recognise a name: our messages carry ids only.

``LOG_FORMAT=text`` (for people, in development) prints plain lines, redacted the same way.
"""

import logging
import os
import re
import sys
from datetime import datetime, timezone
from typing import Any

from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from connector.emails import EMAIL

MESSAGE_ID = re.compile(r"\d{9,}\.\d+\.\d+")
"""The left part of a Message-ID made by email.utils.make_msgid (time.pid.random): not a
person's address, and kept so a log line can be matched with the ledger's message_id."""

LINK_TOKEN = re.compile(r"(/[pu]/)[^/\s?#\"'<>]+")
"""The token in a personal page's (/p/) or unsubscribe link's (/u/) path: whoever has it can
open the person's page or unsubscribe them."""

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EVENT = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
PAIR_START = re.compile(r"\s+(?=[A-Za-z_][A-Za-z0-9_]*=)")
WHOLE_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
UNSTRUCTURED = "log"
JOB_ARGUMENT_FIELDS = ("arguments", "kwargs")
"""Extra fields in which RQ logs a failed job's arguments: a page save's carry the person's
browser and protected IP, which belong in the ledger, not in logs (`jobs show` has them)."""
LIBRARY_LOGGERS = ("rq", "rq.worker", "rq.job", "rq.scheduler", "gunicorn.error",
                   "gunicorn.access", "werkzeug")
"""Loggers that set up their own handlers: configure_logging sends them through ours."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def redact(text: str) -> str:
    """Replace email addresses and personal-link tokens in ``text``."""
    if "@" in text or "%40" in text:
        text = EMAIL.sub(_email_replacement, text)
    if "/p/" in text or "/u/" in text:
        text = LINK_TOKEN.sub(r"\1<token>", text)
    return text


def _email_replacement(match: re.Match) -> str:
    return match.group(0) if MESSAGE_ID.fullmatch(match.group(1)) else "<email>"


def parse_message(message: str) -> tuple[str, dict[str, Any]]:
    """Split ``"event.name key=value key2=value two"`` into the event and its fields.

    Returns ("log", {}) for a message that does not start with an event name.
    """
    first, _, rest = message.partition(" ")
    if not EVENT.fullmatch(first):
        return UNSTRUCTURED, {}
    fields: dict[str, Any] = {}
    for part in PAIR_START.split(rest.strip()):
        key, equals, value = part.partition("=")
        if not equals or not key.isidentifier():
            continue  # free text between the event name and the pairs
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key] = int(value) if WHOLE_NUMBER.fullmatch(value) else value
    return first, fields


def scrub(value: Any) -> Any:
    """Redact every string in ``value`` (dicts, lists and tuples walked; other objects are
    turned into what the JSON encoder would write, then redacted)."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub(item) for item in value]
    return scrub(JsonEncoder().default(value))


class RedactFilter(logging.Filter):
    """Handler filter: redacts the message (arguments merged in) and every ``extra`` field of
    each record before any formatter sees it. The formatters redact their output again, which
    also covers tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format: keep the raw parts, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(ANSI.sub("", message)), None
        for key, value in list(vars(record).items()):
            if key in JOB_ARGUMENT_FIELDS:
                setattr(record, key, "(not logged)")
            elif key not in _RECORD_ATTRS and not key.startswith("_"):
                setattr(record, key, scrub(value))
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, event, the message's
    key=value fields, message, extra fields, and exc_info / stack_info when present."""

    def __init__(self):
        super().__init__(json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        message = redact(ANSI.sub("", record.message))
        event, fields = parse_message(message)
        log_data["time"] = (datetime.fromtimestamp(record.created, timezone.utc)
                            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["event"] = event
        extra: dict[str, Any] = {}
        super().add_fields(extra, record, message_dict)
        extra.pop("message", None)  # the base class's raw copy; ours is cleaned
        for key, value in {**fields, "message": message, **extra}.items():
            if key in log_data:
                key = f"{key}_"  # never let a field replace time, level, logger or event
            log_data[key] = value

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return scrub(log_data)


class TextFormatter(logging.Formatter):
    """Plain lines for people (LOG_FORMAT=text), redacted like the JSON lines."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def make_formatter(log_format: str | None = None) -> logging.Formatter:
    """The formatter LOG_FORMAT asks for: ``text`` → TextFormatter, anything else → JSON."""
    log_format = (log_format or os.environ.get("LOG_FORMAT") or "json").strip().lower()
    return TextFormatter() if log_format == "text" else JsonFormatter()


def make_handler(stream=None, log_format: str | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the redaction filter and our formatter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(RedactFilter())
    handler._connector = True  # configure_logging recognises and replaces its own handler
    return handler


def configure_logging(level: str | int = "INFO", *, log_format: str | None = None,
                      stream=None) -> logging.Handler:
    """Send every log record of the process (ours, RQ's, gunicorn's, Flask's) through one
    handler on stderr: JSON lines, or plain text when LOG_FORMAT=text.

    Safe to call again (the handler is replaced, not added twice). Call it before
    ``Worker.work()``: RQ then adds no handler of its own.

    Args:
        level: the root logger's level.
        log_format: ``json`` or ``text``; default $LOG_FORMAT, else json.
        stream: where to write; default sys.stderr.

    Returns:
        The installed handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        # Ours from an earlier call, and plain stream handlers (logging.basicConfig's, or a
        # dictConfig console handler); other handlers (files, test capture) stay.
        if getattr(handler, "_connector", False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = make_handler(stream, log_format)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        for own in list(library_logger.handlers):
            library_logger.removeHandler(own)
        library_logger.propagate = True
    return handler


def gunicorn_logconfig(level: str = "INFO", log_format: str | None = None) -> dict[str, Any]:
    """A ``logconfig_dict`` for gunicorn.conf.py: gunicorn's error and access logs (and
    everything else) go through the same JSON (or LOG_FORMAT=text) handler, redacted."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"connector": {"()": "connector.logs.make_formatter",
                                     "log_format": log_format}},
        "filters": {"redact": {"()": "connector.logs.RedactFilter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "connector", "filters": ["redact"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }


GUNICORN_ACCESS_LOG_FORMAT = ("http.request method=%(m)s path=%(U)s status=%(s)s "
                              "bytes=%(B)s duration_ms=%(M)s")
"""gunicorn ``access_log_format`` in our event style, without the client's address or User-Agent
(personal data); the link token in the path is redacted."""

_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
