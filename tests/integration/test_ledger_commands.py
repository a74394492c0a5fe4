"""`consent-connector ledger import-redis` and `ledger query`, against the session's Redis and
both evidence databases: the session's PostgreSQL and a SQLite file of the test's own."""

import csv
import io
import subprocess
from datetime import datetime, timezone

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from connector.evidence import facts, legacy
from connector.evidence.database import Database
from connector.evidence.entry import Entry
from connector.evidence.legacy import ImportSummary, import_from_redis
from connector.evidence.ledger import Ledger, append_entry
from connector.evidence.schema import confirmation_mails, metadata, onboarded_persons
from connector.exports.ledger_query import COLUMNS
from connector.keys import (INTAKE_PREFIX, LEGACY_CONFIRMATION_MAIL_PREFIX, LEGACY_LEDGER_PREFIX,
                            LEGACY_ONBOARDED, LEGACY_RECONCILE_WATERMARK)
from tests.conftest import run_command

pytestmark = pytest.mark.integration

# Two different times of the old version's writes: 2025-11-30 00:00 UTC and 2026-01-01.
NOVEMBER, JANUARY = 1764460800000, 1767225600123
IP = "203.0.113.0/24 #1a2b3c4d5e6f7a8b"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request, redis_conn, evidence_database, tmp_path) -> Database:
    """An empty evidence database: the session's PostgreSQL (``redis_conn`` empties it with
    Redis), or a fresh SQLite file with its schema."""
    if request.param == "postgresql":
        yield evidence_database
        return
    database = Database(f"sqlite:///{tmp_path}/consent.db")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def env(connector_env, database) -> dict[str, str]:
    """The connector's environment on ``database``."""
    return connector_env | {"DATABASE_URL": database.url.render_as_string(hide_password=False)}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``consent-connector ledger ARGS`` with ``env``."""
    return run_command(env, "ledger", *args)


def write_old_data(connection) -> None:
    """What a version before the evidence database left in Redis."""
    person_101 = f"{LEGACY_LEDGER_PREFIX}101"
    connection.xadd(person_101, {
        "at": "2025-11-30T00:00:00.000+00:00", "action": "consent.recorded",
        "purpose": "STORE", "legal_basis": "61F", "source": "USER",
        "comment": "Recorded by consent-connector for a new person", "actor": "connector",
        "job_id": "job-1", "event_id": "event-1"}, id=f"{NOVEMBER}-0")
    connection.xadd(person_101, {
        "at": "2025-11-30T00:00:00.000+00:00", "action": "mail.sent", "mail": "confirmation",
        "token_id": "tok-1", "message_id": "<m1@consent.example.com>", "actor": "connector",
        "job_id": "job-1"}, id=f"{NOVEMBER}-1")
    connection.xadd(person_101, {
        "at": "2026-01-01T00:00:00.123+00:00", "action": "consent.changed",
        "purpose": "EMARKETING", "previous_legal_basis": "", "legal_basis": "61A",
        "source": "WEBFORM", "actor": "person", "job_id": "job-2", "notice_version": "2026-01",
        "submitted_at": "2025-12-31T23:59:58+00:00", "token_id": "tok-1", "ip": IP,
        "user_agent": BROWSER}, id=f"{JANUARY}-0")
    person_102 = f"{LEGACY_LEDGER_PREFIX}102"
    connection.xadd(person_102, {
        "at": "2025-12-01T08:00:00+00:00", "action": "consent.recorded", "purpose": "STORE",
        "legal_basis": "61F", "source": "USER"}, id="1764576000000-0")
    connection.xadd(person_102, {
        "at": "2025-12-01T08:00:01+00:00", "action": "person.onboarded",
        "job_id": "job-102", "event_id": "event-102"}, id="1764576001000-0")
    connection.xadd(f"{LEGACY_LEDGER_PREFIX}103", {"action": "consent.recorded",
                                                   "purpose": "STORE", "legal_basis": "61F"},
                    id=f"{JANUARY}-0")  # no "at": the stream id's time stands in
    connection.sadd(LEGACY_ONBOARDED, 101, 102, 104)
    connection.set(f"{LEGACY_CONFIRMATION_MAIL_PREFIX}101", "sent")
    connection.set(f"{LEGACY_CONFIRMATION_MAIL_PREFIX}102", "sending")
    connection.set(f"{LEGACY_CONFIRMATION_MAIL_PREFIX}102:attempt", "1")
    connection.set(LEGACY_RECONCILE_WATERMARK, "2026-01-02T03:04:05+00:00")


def redis_contents(connection) -> dict:
    """Every connector key with its serialised value and time to live (RQ's own keys and the
    intake's are the session worker's: it renews its locks and says it is alive whenever it
    likes)."""
    return {key: (connection.dump(key), connection.ttl(key))
            for key in sorted(connection.scan_iter(match="connector:*", count=100))
            if not key.startswith(INTAKE_PREFIX.encode())}


def database_contents(database: Database) -> dict:
    """Every row of every table, in a stable order."""
    with database.reading() as connection:
        return {table.name: [tuple(row) for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns))]
                for table in metadata.sorted_tables}


# -- import-redis ------------------------------------------------------------------------------


def test_import_copies_every_stream_entry_at_its_own_time_and_a_second_run_changes_nothing(
        database, redis_conn, monkeypatch):
    monkeypatch.setattr(legacy, "XRANGE_COUNT", 2)  # person 101's stream takes two reads
    write_old_data(redis_conn)
    redis_before = redis_contents(redis_conn)

    summary = import_from_redis(redis_conn, database)

    assert summary == ImportSummary(
        persons=3, entries_imported=6, entries_already_there=0, persons_with_other_entries=0,
        onboarded_imported=3, mails_imported=1, mails_in_flight=1,
        watermark="2026-01-02T03:04:05+00:00", watermark_moved=True)
    ledger = Ledger(database)
    history = ledger.entries(101)
    assert [(entry["at"], entry["action"], entry.get("redis_id")) for entry in history] == [
        ("2025-11-30T00:00:00.000+00:00", "consent.recorded", f"{NOVEMBER}-0"),
        ("2025-11-30T00:00:00.000+00:00", "mail.sent", f"{NOVEMBER}-1"),
        ("2026-01-01T00:00:00.123+00:00", "consent.changed", f"{JANUARY}-0"),
        (history[3]["at"], "person.onboarded", None),  # old versions kept no entry for it
    ]
    assert history[3]["note"] == legacy.IMPORTED_NOTE
    assert history[3]["at"] > "2026-01-01T00:00:00.123+00:00"  # the import's own time
    choice = history[2]
    assert {name: choice[name] for name in ("purpose", "legal_basis", "notice_version",
                                            "submitted_at", "token_id", "ip", "user_agent")} == {
        "purpose": "EMARKETING", "legal_basis": "61A", "notice_version": "2026-01",
        "submitted_at": "2025-12-31T23:59:58+00:00", "token_id": "tok-1", "ip": IP,
        "user_agent": BROWSER}
    assert [(entry["at"], entry["action"]) for entry in ledger.entries(102)] == [
        ("2025-12-01T08:00:00.000+00:00", "consent.recorded"),
        ("2025-12-01T08:00:01.000+00:00", "person.onboarded")]  # no second one
    assert [entry["at"] for entry in ledger.entries(103)] == ["2026-01-01T00:00:00.123+00:00"]
    assert [entry["action"] for entry in ledger.entries(104)] == ["person.onboarded"]

    assert facts.onboarded(database, [101, 102, 103, 104]) == [True, True, False, True]
    assert facts.confirmation_mail_state(database, 101) == facts.SENT
    assert facts.confirmation_mail_state(database, 102) is None  # "sending": not imported
    with database.reading() as connection:
        mail = connection.execute(select(confirmation_mails)).mappings().one()
        onboarded_102 = connection.execute(select(onboarded_persons).where(
            onboarded_persons.c.person_id == 102)).mappings().one()
    assert (mail["sent_at"], mail["message_id"], mail["job_id"]) == (
        "2025-11-30T00:00:00.000+00:00", "<m1@consent.example.com>", "job-1")
    assert (onboarded_102["at"], onboarded_102["job_id"], onboarded_102["event_id"]) == (
        "2025-12-01T08:00:01.000+00:00", "job-102", "event-102")
    assert facts.read_watermark(database) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert ledger.verify_all().breaks == ()

    imported = database_contents(database)
    again = import_from_redis(redis_conn, database)

    assert again == ImportSummary(
        persons=3, entries_imported=0, entries_already_there=6, persons_with_other_entries=0,
        onboarded_imported=0, mails_imported=0, mails_in_flight=1,
        watermark="2026-01-02T03:04:05+00:00", watermark_moved=False)
    assert database_contents(database) == imported
    assert redis_contents(redis_conn) == redis_before  # Redis is only read


def test_import_appends_after_entries_the_new_version_wrote_first_and_counts_those_persons(
        database, redis_conn):
    write_old_data(redis_conn)
    Ledger(database).append(101, "consent.changed", purpose="EMARKETING", legal_basis="61A")

    summary = import_from_redis(redis_conn, database)

    assert summary.persons_with_other_entries == 1
    assert [entry.get("redis_id") for entry in Ledger(database).entries(101)][:4] == [
        None, f"{NOVEMBER}-0", f"{NOVEMBER}-1", f"{JANUARY}-0"]
    assert Ledger(database).verify_all().breaks == ()
    assert import_from_redis(redis_conn, database).persons_with_other_entries == 0


def test_import_redis_command_reports_what_it_copied_and_nothing_on_a_second_run(
        env, database, redis_conn):
    write_old_data(redis_conn)

    first = run(env, "import-redis")

    assert first.returncode == 0, first.stderr
    assert "ledger: 3 persons, 6 entries imported, 0 already there" in first.stdout
    assert "onboarded persons: 3 imported" in first.stdout
    assert "confirmation mails: 1 imported as sent" in first.stdout
    assert "reconciliation watermark: moved to 2026-01-02T03:04:05+00:00" in first.stdout
    assert "NOTE  1 confirmation mail(s) were being sent" in first.stdout
    assert "WARNING" not in first.stdout
    assert Ledger(database).entries(101)[2]["at"] == "2026-01-01T00:00:00.123+00:00"

    verified = run(env, "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "4 persons, 8 entries checked: no broken ledger(s)" in verified.stdout

    contents = database_contents(database)
    second = run(env, "import-redis")

    assert second.returncode == 0, second.stderr
    assert "ledger: 3 persons, 0 entries imported, 6 already there" in second.stdout
    assert "onboarded persons: 0 imported" in second.stdout
    assert "confirmation mails: 0 imported as sent" in second.stdout
    assert "reconciliation watermark: already at 2026-01-02T03:04:05+00:00 or later" in (
        second.stdout)
    assert database_contents(database) == contents


# -- query -------------------------------------------------------------------------------------


def write_entries(database: Database) -> None:
    """E-marketing choices under notices 2026-01 and 2025-06 by three persons, an objection
    to sales and service, and a default on it."""
    proof = {"source": "WEBFORM", "actor": "person", "submitted_at": "2026-01-10T08:59:59+00:00",
             "token_id": "tok-201", "ip": IP, "user_agent": BROWSER, "job_id": "job-201"}
    rows = [
        (201, "2026-01-10T09:00:00.000+00:00", Entry("consent.changed", {
            "purpose": "EMARKETING", "previous_legal_basis": "", "legal_basis": "61A",
            "notice_version": "2026-01", **proof})),
        (201, "2026-01-10T09:00:01.000+00:00", Entry("consent.recorded", {
            "purpose": "STORE", "legal_basis": "61F", "source": "USER"})),
        (202, "2026-02-01T12:00:00.000+00:00", Entry("consent.changed", {
            "purpose": "EMARKETING", "legal_basis": "61A", "notice_version": "2026-01",
            "via": "link", "token_id": "tok-202"})),
        (202, "2026-03-01T07:30:00.000+00:00", Entry("consent.changed", {
            "purpose": "EMARKETING", "previous_legal_basis": "61A",
            "legal_basis": "WITHDRAWN", "notice_version": "2026-01",
            "comment": "=cmd|' /C calc'!A0", "token_id": "tok-202b"})),
        (203, "2025-07-01T10:00:00.000+00:00", Entry("consent.changed", {
            "purpose": "EMARKETING", "legal_basis": "61A", "notice_version": "2025-06"})),
        (204, "2026-01-15T10:00:00.000+00:00", Entry("consent.changed", {
            "purpose": "STORE", "previous_legal_basis": "61F", "legal_basis": "WITHDRAWN"})),
    ]
    with database.writing() as connection:
        for person_id, at, entry in rows:
            append_entry(database, connection, person_id, entry, at=at)


def test_query_writes_a_workbook_of_exactly_the_notices_entries_with_their_proof(
        env, database, tmp_path):
    write_entries(database)
    output = tmp_path / "optins.xlsx"

    result = run(env, "query", "--purpose", "EMARKETING", "--notice", "2026-01",
                 "-o", str(output))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{output}: 3 rows (purpose EMARKETING, notice 2026-01)"
    sheet = load_workbook(output)["Ledger entries"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == COLUMNS
    table = [dict(zip(COLUMNS, row)) for row in rows[1:]]
    assert [(row["person_id"], row["at"], row["outcome"]) for row in table] == [
        (201, datetime(2026, 1, 10, 9, 0), "given"),
        (202, datetime(2026, 2, 1, 12, 0), "given"),
        (202, datetime(2026, 3, 1, 7, 30), "withdrawn")]
    first = table[0]
    assert (first["action"], first["legal_basis"], first["source"], first["actor"],
            first["notice_version"], first["submitted_at"], first["token_id"], first["ip"],
            first["user_agent"], first["job_id"]) == (
        "consent.changed", "61A", "WEBFORM", "person", "2026-01",
        datetime(2026, 1, 10, 8, 59, 59), "tok-201", IP, BROWSER, "job-201")
    assert table[1]["via"] == "link"
    assert table[2]["comment"] == "=cmd|' /C calc'!A0"  # text, not a formula
    assert sheet.cell(row=4, column=COLUMNS.index("comment") + 1).data_type == "s"


def test_query_writes_csv_and_since_and_until_narrow_it(env, database, tmp_path):
    write_entries(database)
    output = tmp_path / "optins.csv"

    everything = run(env, "query", "--purpose", "EMARKETING", "--notice", "2026-01",
                     "-o", str(output))

    assert everything.returncode == 0, everything.stderr
    with open(output, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames) == COLUMNS
        table = list(reader)
    assert [(row["person_id"], row["at"], row["outcome"], row["token_id"]) for row in table] == [
        ("201", "2026-01-10T09:00:00.000+00:00", "given", "tok-201"),
        ("202", "2026-02-01T12:00:00.000+00:00", "given", "tok-202"),
        ("202", "2026-03-01T07:30:00.000+00:00", "withdrawn", "tok-202b")]
    assert (table[0]["ip"], table[0]["user_agent"], table[0]["submitted_at"]) == (
        IP, BROWSER, "2026-01-10T08:59:59+00:00")

    since = run(env, "query", "--purpose", "EMARKETING", "--notice", "2026-01",
                "--since", "2026-02-01", "-o", str(output))
    assert since.returncode == 0, since.stderr
    with open(output, encoding="utf-8", newline="") as stream:
        assert [row["at"] for row in csv.DictReader(stream)] == [
            "2026-02-01T12:00:00.000+00:00", "2026-03-01T07:30:00.000+00:00"]

    window = run(env, "query", "--purpose", "EMARKETING", "--since",
                 "2026-02-01T12:00:00.001Z", "--until", "2026-03-02", "-o", str(output))
    assert window.returncode == 0, window.stderr
    assert "1 rows" in window.stdout
    with open(output, encoding="utf-8", newline="") as stream:
        assert [row["token_id"] for row in csv.DictReader(stream)] == ["tok-202b"]


def test_query_without_output_prints_csv_and_names_an_objection(env, database):
    write_entries(database)

    result = run(env, "query", "--purpose", "sales_and_service")  # the config's name

    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["person_id"], row["action"], row["outcome"]) for row in table] == [
        ("201", "consent.recorded", "other"), ("204", "consent.changed", "objected")]
    assert result.stderr.strip() == "standard output: 2 rows (purpose STORE)"


@pytest.mark.parametrize("args, message", [
    (("--since", "2026-13-45", "-o", "optins.csv"), "'2026-13-45' is not a date or time"),
    (("--until", "yesterday", "-o", "optins.csv"), "'yesterday' is not a date or time"),
    (("-o", "optins.txt"), "cannot tell the format of optins.txt: name the file .xlsx or .csv"),
    (("--since", "2026-02-01", "--until", "2026-01-01", "-o", "optins.csv"),
     "must be before --until"),
])
def test_query_refuses_bad_options_before_reading_anything(connector_env, tmp_path, args,
                                                           message):
    # A database that cannot be reached: the usage error must come first.
    unreachable = connector_env | {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    args = [str(tmp_path / arg) if arg.startswith("optins.") else arg for arg in args]

    result = run(unreachable, "query", "--purpose", "EMARKETING", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Usage:" in result.stderr and "DATABASE_URL" not in result.stderr
    assert list(tmp_path.iterdir()) == []
