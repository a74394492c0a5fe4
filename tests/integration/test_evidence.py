"""The evidence database, on SQLite (the embedded default) and on a real PostgreSQL: the ledger's
hash chain, what happens once, erasure, the schema and its migrations, and processes that
refuse a schema that is behind."""

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import IntegrityError

from connector.evidence import facts
from connector.evidence.database import MIGRATIONS, Database
from connector.evidence.entry import Entry
from connector.evidence.ledger import Ledger
from connector.evidence.schema import SCHEMA_REVISION, ledger_entries, metadata
from connector.times import now
from tests.conftest import ROOT, empty_evidence, run_command, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """An evidence database with the schema up to date: a SQLite file of the test's own, or the
    session's PostgreSQL (emptied)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/consent.db")
        database.upgrade()
    else:
        database = Database(request.getfixturevalue("evidence_database").url)
        empty_evidence(database)
    yield database
    database.dispose()


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def url_of(database: Database) -> str:
    return database.url.render_as_string(hide_password=False)


def cli(database: Database, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``consent-connector ARGS`` with DATABASE_URL naming ``database`` (the ``db`` and
    ``ledger`` commands read nothing else)."""
    return run_command({"DATABASE_URL": url_of(database), **env}, *args)


def a_choice(ledger: Ledger, person_id: int) -> None:
    """The entries a person's onboarding and one choice on their page leave behind."""
    ledger.append(person_id, "consent.recorded", purpose="STORE", legal_basis="61F",
                  source="USER", actor="connector", job_id="j1", event_id="e1")
    ledger.append(person_id, "mail.sent", mail="confirmation", token_id="tok-1",
                  message_id="<1@example.com>", actor="connector", job_id="j1")
    ledger.append(person_id, "consent.changed", purpose="EMARKETING", legal_basis="61A",
                  source="WEBFORM", actor="person", token_id="tok-1", notice_version="2026-01",
                  ip="203.0.113.0/24 #1a2b3c4d5e6f7a8b", user_agent="Mozilla/5.0 (X11; Linux)",
                  submitted_at="2026-11-30T10:00:00+00:00", job_id="j2")


# ---------------------------------------------------------------- the chain
def test_a_ledger_written_by_the_connector_verifies_and_reads_back_as_written(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)
    a_choice(ledger, 8)

    entries = ledger.entries(7)
    assert [e["action"] for e in entries] == ["consent.recorded", "mail.sent", "consent.changed"]
    assert entries[2]["ip"] == "203.0.113.0/24 #1a2b3c4d5e6f7a8b"
    assert entries[2]["notice_version"] == "2026-01" and entries[2]["token_id"] == "tok-1"
    assert ledger.verify(7) is None
    report = ledger.verify_all()
    assert (report.persons, report.entries, report.breaks) == (2, 6, ())
    result = cli(database, "ledger", "verify", "--all")
    assert result.returncode == 0, result.stderr
    assert "2 persons, 6 entries checked: no broken ledger(s)" in result.stdout


def test_an_entry_edited_by_hand_in_the_database_is_named_by_ledger_verify(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)
    a_choice(ledger, 8)
    withdrawn = ledger.entries(7)[2]["id"]
    with database.writing() as connection:  # someone "corrects" the evidence
        connection.execute(update(ledger_entries).where(ledger_entries.c.id == int(withdrawn))
                           .values(legal_basis="WITHDRAWN"))

    broken = ledger.verify(7)
    assert broken is not None and broken.entry_id == int(withdrawn) and broken.seq == 3
    assert "changed after it was written" in broken.problem
    assert ledger.verify(8) is None
    one = cli(database, "ledger", "verify", "7")
    assert one.returncode == 1
    assert f"person 7: entry {withdrawn} (#3 of the person)" in one.stdout
    everyone = cli(database, "ledger", "verify", "--all")
    assert everyone.returncode == 1
    assert everyone.stdout.count("BROKEN") == 1 and "1 broken ledger(s)" in everyone.stdout


def test_a_deleted_entry_and_changed_proof_break_the_chain_where_they_happened(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)
    a_choice(ledger, 8)
    ids = [int(e["id"]) for e in ledger.entries(7)]
    with database.writing() as connection:
        connection.execute(delete(ledger_entries).where(ledger_entries.c.id == ids[1]))
        connection.execute(update(ledger_entries).where(ledger_entries.c.person_id == 8,
                                                        ledger_entries.c.seq == 3)
                           .values(personal='{"ip":"198.51.100.0/24 #0","user_agent":"x"}'))

    missing = ledger.verify(7)
    assert missing.seq == 2 and "missing" in missing.problem
    changed = ledger.verify(8)
    assert changed.seq == 3 and "does not match its digest" in changed.problem


def test_a_database_error_never_shows_the_proof_it_was_writing(database):
    with pytest.raises(IntegrityError) as raised:
        with database.writing() as connection:  # a row the unique (person, seq) refuses
            for _ in range(2):
                connection.execute(insert(ledger_entries).values(
                    person_id=1, seq=1, at="2026-11-30T00:00:00.000+00:00", action="x",
                    details="{}", personal='{"ip":"203.0.113.0/24 #secret"}', prev_hash="0",
                    hash="0"))
    assert "203.0.113" not in str(raised.value)


def test_appends_for_one_person_from_many_threads_make_one_unbroken_chain(database):
    ledger = Ledger(database)
    errors = []

    def append_some(thread: int):
        try:
            for n in range(10):
                ledger.append(5, "consent.recorded", purpose="STORE", job_id=f"{thread}-{n}")
        except Exception as error:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(error)

    threads = [threading.Thread(target=append_some, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    entries = ledger.entries(5)
    assert len(entries) == 60 and len({e["job_id"] for e in entries}) == 60
    assert ledger.verify(5) is None


# ---------------------------------------------------------------- erasure
def test_erasure_removes_the_identifying_proof_and_the_chain_still_verifies(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)

    assert facts.erase_now(database, 7, "dpo") == 1
    assert facts.erase_now(database, 7, "dpo") == 0  # nothing left: no second entry

    entries = ledger.entries(7)
    assert [e["action"] for e in entries][-1] == "ledger.erased"
    assert (entries[2]["ip"], entries[2]["user_agent"]) == ("erased", "erased")
    assert entries[2]["legal_basis"] == "61A" and entries[2]["token_id"] == "tok-1"
    assert entries[-1]["erased_entries"] == "1" and entries[-1]["actor"] == "dpo"
    assert ledger.verify(7) is None
    with database.reading() as connection:
        stored = connection.execute(text("SELECT personal, personal_salt FROM ledger_entries "
                                         "WHERE person_id = 7 AND seq = 3")).one()
    assert "203.0.113" not in stored.personal and "Mozilla" not in stored.personal
    assert stored.personal_salt is None


def test_proof_erased_by_hand_without_an_erasure_entry_is_reported(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)
    with database.writing() as connection:
        connection.execute(update(ledger_entries).where(ledger_entries.c.seq == 3)
                           .values(personal='{"ip":"erased","user_agent":"erased"}',
                                   personal_salt=None))

    broken = ledger.verify(7)
    assert broken.seq == 3 and "no ledger.erased entry" in broken.problem


def test_an_erasure_request_waits_for_its_grace_period_and_is_done_once(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)
    entry = Entry("person.deleted", {"actor": "crm user", "event_id": "e9"})

    due = now() + timedelta(days=30)
    first = facts.request_erasure(database, 7, entry, due, "person.deleted webhook")
    again = facts.request_erasure(database, 7, entry, due, "person.deleted webhook")

    assert (first, again) == (True, False)
    assert facts.erase_due(database, "connector") == {}  # not yet
    assert ledger.entries(7)[2]["ip"] != "erased"
    assert facts.erase_due(database, "connector", due + timedelta(seconds=1)) == {7: 1}
    assert facts.erase_due(database, "connector", due + timedelta(days=1)) == {}
    actions = [e["action"] for e in ledger.entries(7)]
    assert actions[-2:] == ["person.deleted", "ledger.erased"]
    assert ledger.verify(7) is None


def test_ledger_erase_schedules_by_default_and_erases_with_now_or_when_due(database):
    ledger = Ledger(database)
    a_choice(ledger, 7)
    a_choice(ledger, 8)

    scheduled = cli(database, "ledger", "erase", "7", "--by", "Dana DPO",
                    LEDGER_ERASE_AFTER_DAYS="30")
    nothing_due = cli(database, "ledger", "erase", "--due")
    at_once = cli(database, "ledger", "erase", "8", "--now")
    neither = cli(database, "ledger", "erase")

    assert scheduled.returncode == 0 and "will be erased on" in scheduled.stdout
    assert "(LEDGER_ERASE_AFTER_DAYS=30)" in scheduled.stdout
    assert "0 due erasure(s) carried out" in nothing_due.stdout
    assert "erased from 1 entries" in at_once.stdout
    assert neither.returncode == 2 and "give a PERSON_ID" in neither.stderr
    requested = ledger.entries(7)[-1]
    assert (requested["action"], requested["actor"]) == ("ledger.erasure_requested", "Dana DPO")
    assert ledger.entries(7)[2]["ip"] != "erased" and ledger.entries(8)[2]["ip"] == "erased"
    assert ledger.verify(7) is None and ledger.verify(8) is None


# ---------------------------------------------------------------- what happens once
def test_onboarded_and_mail_sent_are_written_once_with_their_entries(database):
    ledger = Ledger(database)
    onboarded = Entry("person.onboarded", {"actor": "connector", "job_id": "j1"})

    assert facts.claim_confirmation_mail(database, 3, "j1") is facts.Claim.CLAIMED
    assert facts.mark_onboarded(database, 3, onboarded,
                                mail_sent=Entry("mail.sent", {"message_id": "<m>"})) is True
    assert facts.mark_onboarded(database, 3, onboarded) is False
    assert facts.onboarded(database, [3, 4]) == [True, False]
    assert facts.claim_confirmation_mail(database, 3, "j2") is facts.Claim.SENT
    assert facts.confirmation_mail_state(database, 3) == facts.SENT
    assert [e["action"] for e in ledger.entries(3)] == ["mail.sent", "person.onboarded"]


def test_the_watermark_only_moves_forward(database):
    later = now().replace(microsecond=0)
    assert facts.read_watermark(database) is None
    assert facts.advance_watermark(database, later) is True
    assert facts.advance_watermark(database, later - timedelta(hours=1)) is False
    assert facts.read_watermark(database) == later


# ---------------------------------------------------------------- the schema
def test_the_migrations_build_exactly_the_schema_the_code_declares(database):
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert differences == []
    assert database.revisions() == (head, head) == (SCHEMA_REVISION, SCHEMA_REVISION)


def test_db_upgrade_creates_the_schema_once_and_db_current_says_so(tmp_path):
    fresh = Database(f"sqlite:///{tmp_path}/new.db")

    behind = cli(fresh, "db", "current")
    first = cli(fresh, "db", "upgrade")
    second = cli(fresh, "db", "upgrade")
    current = cli(fresh, "db", "current")

    assert behind.returncode == 1 and "run `consent-connector db upgrade`" in behind.stdout
    assert first.returncode == 0 and "schema upgraded from empty to 0001" in first.stdout
    assert second.returncode == 0 and "already at revision 0001" in second.stdout
    assert current.returncode == 0 and "(up to date)" in current.stdout


def test_web_and_worker_refuse_a_database_whose_schema_is_behind(connector_env, tmp_path):
    env = connector_env | {"DATABASE_URL": f"sqlite:///{tmp_path}/empty.db",
                           "DATA_DIR": str(tmp_path)}
    worker = start_worker(env)
    assert worker.wait(30) == 2
    said = worker.log_path.read_text()
    web = subprocess.run([sys.executable, "-c", "from connector.web.app import "
                          "create_app_from_env; create_app_from_env()"],
                         env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)

    for output in (said, web.stderr):
        assert "has no schema yet" in output and "consent-connector db upgrade" in output
    assert web.returncode == 2


def test_without_database_url_the_embedded_sqlite_file_is_created_in_data_dir(connector_env,
                                                                              tmp_path):
    env = {key: value for key, value in connector_env.items() if key != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-m", "connector", "status"], cwd=ROOT, text=True,
                            env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                                 **env, "DATA_DIR": str(tmp_path)},
                            capture_output=True, timeout=120)

    assert (tmp_path / "consent.db").is_file(), result.stderr
    assert f"sqlite:///{tmp_path}/consent.db" in result.stdout
    assert "(up to date)" in result.stdout
