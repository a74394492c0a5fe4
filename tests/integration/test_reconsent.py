"""`consent-connector reconsent`: after a consent text's version changed, the persons who
agreed to an older one are listed (--dry-run) and each is mailed the new text once, against
the session's evidence database, Redis, the sandbox CRM and the SMTP sink."""

import pytest
from rq import Queue

from connector.evidence.ledger import Ledger
from connector.keys import BACKFILL
from connector.services import build_services
from connector.settings import Settings
from tests.conftest import own_database, run_command
from tests.factories import edit_file, shipped_config_copy
from workers.notices import send_new_notice_with

pytestmark = pytest.mark.integration


@pytest.fixture
def own(connector_env, tmp_path):
    """The connector's environment with E-marketing's consent text at version 2026-02, on a
    Redis database no worker takes jobs from (db 4), and its client."""
    path = shipped_config_copy(tmp_path)
    edit_file(path, 'version: "2026-01"', 'version: "2026-02"')
    return own_database(connector_env, 4, CONSENT_CONFIG=str(path))


@pytest.fixture
def bumped(own):
    return own[0]


def test_the_dry_run_lists_exactly_the_persons_on_an_older_text_and_each_is_mailed_once(
        own, sandbox, evidence_database, smtp_server):
    bumped, redis_conn = own
    ledger = Ledger(evidence_database)
    older, withdrew, renewed, by_crm = (
        sandbox.create_person(name, "Tester", f"{name.lower()}.notice@example.org")
        for name in ("Older", "Withdrew", "Renewed", "Crm"))
    consent = {"purpose": "EMARKETING", "legal_basis": "61A", "source": "WEBFORM"}
    ledger.append(older, "consent.changed", **consent, notice_version="2026-01")
    ledger.append(withdrew, "consent.changed", **consent, notice_version="2026-01")
    ledger.append(withdrew, "consent.changed", **(consent | {"legal_basis": "WITHDRAWN"}),
                  notice_version="2026-01")
    ledger.append(renewed, "consent.changed", **consent, notice_version="2026-01")
    ledger.append(renewed, "consent.changed", **consent, notice_version="2026-02")
    ledger.append(by_crm, "crm.consent_changed", **consent)

    listed = run_command(bumped, "reconsent", "--purpose", "EMARKETING", "--dry-run")

    assert listed.returncode == 0, listed.stderr
    assert ("EMARKETING (e_marketing): the consent text is at version 2026-02; 1 person(s) "
            "agreed to an older version, 1 to a consent with no version recorded") in listed.stdout
    persons = [line.split()[1] for line in listed.stdout.splitlines()
               if line.startswith("  person ")]
    assert persons == [str(older), str(by_crm)]
    assert "version 2026-01" in listed.stdout and "no version recorded" in listed.stdout
    assert Queue(BACKFILL, connection=redis_conn).count == 0

    queued = run_command(bumped, "reconsent", "--purpose", "e_marketing")
    assert queued.returncode == 0 and "2 mail(s) queued" in queued.stdout
    jobs = Queue(BACKFILL, connection=redis_conn).jobs
    assert [job.args for job in jobs] == [(older, "e_marketing", "2026-01"),
                                          (by_crm, "e_marketing", None)]

    services = build_services(Settings.from_env(bumped))
    try:
        assert send_new_notice_with(services, older, "e_marketing", "2026-01", "j1") == "sent"
        assert send_new_notice_with(services, older, "e_marketing", "2026-01",
                                    "j2") == "already sent"
    finally:
        services.database.dispose()
    mails = smtp_server.sink.to("older.notice@example.org")
    assert len(mails) == 1
    text = mails[0].get_body(("plain",)).get_content()
    assert mails[0]["Subject"] == "The text of “E-marketing” has changed"
    assert "version 2026-01 is now version 2026-02" in text
    assert "https://consent.example.com/p/" in text
    sent = [e for e in ledger.entries(older) if e["action"] == "mail.sent"]
    assert [(e["mail"], e["purpose"], e["notice_version"]) for e in sent] == [
        ("new-notice", "EMARKETING", "2026-02")]


def test_a_purpose_without_a_consent_text_or_unknown_is_refused_naming_the_purposes(bumped):
    unknown = run_command(bumped, "reconsent", "--purpose", "NEWSLETTER", "--dry-run")
    assert unknown.returncode == 2 and "EMARKETING (e_marketing)" in unknown.stderr
    no_text = run_command(bumped, "reconsent", "--purpose", "STORE", "--dry-run")
    assert no_text.returncode == 2 and "has no notice" in no_text.stderr
