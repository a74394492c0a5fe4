"""Consents that lapse (E-marketing: consent_valid_for 24 months, remind_before 30 days in the
shipped purposes file), with the clock moved: the consent's proof is dated back in the ledger
and the pass is run for a moment in the future. The session's worker process runs the jobs
against the sandbox CRM and the SMTP sink."""

from datetime import timedelta

import pytest
from rq import Queue

from connector.evidence.ledger import Ledger
from connector.expiry import due_consents
from connector.expiry_pass import expiry_pass
from connector.keys import BACKFILL
from connector.services import build_services
from connector.settings import Settings
from connector.times import now, parse_iso
from tests.conftest import consent_given_days_ago, own_database, run_command, wait_for
from tests.integration.test_onboarding import run_onboarding
from tests.factories import edit_file, shipped_config, shipped_config_copy
from workers.expiry import check_consent_with

pytestmark = pytest.mark.integration
MARKETING = shipped_config().purposes["e_marketing"]


@pytest.fixture
def services(settings):
    built = build_services(settings)
    yield built
    built.database.dispose()


def entries_of(ledger, person_id, action, **facts):
    return [entry for entry in ledger.entries(person_id) if entry["action"] == action
            and all(entry.get(name) == value for name, value in facts.items())]


def test_a_consent_reaching_remind_before_gets_one_mail_and_on_its_day_is_withdrawn(
        sandbox, worker, services, smtp_server, evidence_database, ledger):
    person_id = sandbox.create_person("Lapse", "Tester", "lapse.expiry@example.org")
    ids = {item["Name"]: item["Id"] for item in sandbox.person(person_id)["ShipmentTypes"]}
    sandbox.patch_person(person_id, {"ShipmentTypes": [{"Id": ids["Newsletter"],
                                                        "Selected": True}]})
    consent_given_days_ago(sandbox, evidence_database, person_id, 710)  # ends in ~20 days

    first = expiry_pass(services)

    assert (first["remind"], first["withdraw"], first["queued"]) == (1, 0, 1)
    mail = wait_for(lambda: smtp_server.sink.to("lapse.expiry@example.org"),
                    what="the re-permission mail")[0]
    assert mail["Subject"] == "Please renew your consent to “E-marketing”"
    text = mail.get_body(("plain",)).get_content()
    assert "https://consent.example.com/p/" in text and "Your consent lasts until" in text
    sent = wait_for(lambda: entries_of(ledger, person_id, "mail.sent", mail="re-permission"),
                    what="the mail in the ledger")
    assert sent[0]["purpose"] == "EMARKETING" and sent[0]["notice_version"] == "2026-01"

    again = expiry_pass(services)
    assert (again["remind"], again["queued"]) == (0, 0)

    # The reminder went out ~20 days before the end: the person still gets 30 days' notice.
    too_early = expiry_pass(services, now() + timedelta(days=25))
    assert (too_early["remind"], too_early["withdraw"]) == (0, 0)
    lapsed = expiry_pass(services, now() + timedelta(days=31))
    assert (lapsed["withdraw"], lapsed["queued"]) == (1, 1)

    def withdrawn():
        row = sandbox.consents(person_id)["EMARKETING"]
        return row if row["LegalBaseKey"] == "WITHDRAWN" else None
    row = wait_for(withdrawn, what="the lapsed consent withdrawn in the CRM")
    assert row["Comment"].startswith("Consent expired: given ")
    assert row["ConsentSourceKey"] == "WEBFORM"
    expired = wait_for(lambda: entries_of(ledger, person_id, "consent.expired"),
                       what="the expiry in the ledger")
    assert expired[0]["legal_basis"] == "WITHDRAWN" and expired[0]["actor"] == "connector"
    assert expired[0]["lapses_on"] == sent[0]["lapses_on"]
    assert wait_for(lambda: not any(sandbox.shipment_types(person_id).values()),
                    what="unsubscribed from the purpose's subscriptions")
    assert len(smtp_server.sink.to("lapse.expiry@example.org")) == 1
    assert expiry_pass(services, now() + timedelta(days=31))["withdraw"] == 0
    assert ledger.verify(person_id) is None


def test_without_an_address_no_mail_can_ask_and_the_consent_lapses_at_the_end_of_its_term(
        sandbox, worker, services, evidence_database, ledger):
    person_id = sandbox.create_person("Nomail", "Tester", None)
    consent_given_days_ago(sandbox, evidence_database, person_id, 711)  # ends in ~19 days

    assert expiry_pass(services)["remind"] == 1
    skipped = wait_for(lambda: entries_of(ledger, person_id, "mail.not_sent"),
                       what="the ledger to say no mail could go")
    assert (skipped[0]["mail"], skipped[0]["reason"]) == ("re-permission",
                                                         "the person has no email address")
    assert skipped[0]["lapses_on"] == skipped[0]["consent_ends"]
    assert expiry_pass(services, now() + timedelta(days=21))["withdraw"] == 1
    wait_for(lambda: entries_of(ledger, person_id, "consent.expired"), what="the withdrawal")


def test_a_consent_renewed_since_or_withdrawn_is_left_alone(sandbox, worker, services,
                                                           evidence_database, ledger):
    renewed = sandbox.create_person("Renewed", "Tester", "renewed.expiry@example.org")
    consent_given_days_ago(sandbox, evidence_database, renewed, 800)
    consent_given_days_ago(sandbox, evidence_database, renewed, 10)
    withdrew = sandbox.create_person("Withdrew", "Tester", "withdrew.expiry@example.org")
    consent_given_days_ago(sandbox, evidence_database, withdrew, 800)
    ledger.append(withdrew, "consent.changed", purpose="EMARKETING", legal_basis="WITHDRAWN",
                  source="WEBFORM", actor="person")

    summary = expiry_pass(services, now() + timedelta(days=30))

    assert (summary["remind"], summary["withdraw"], summary["queued"]) == (0, 0, 0)


def test_a_consent_the_crm_had_before_onboarding_is_recorded_and_lapses_like_any_other(
        sandbox, worker, services, redis_conn, settings, ledger):
    """The pass's choice is read straight from the ledger here: no job is queued."""
    person_id = sandbox.create_person("Form", "Tester", "form.expiry@example.org")
    sandbox.set_consent(person_id, "EMARKETING", "61A", "WEBFORM")  # the web form's consent
    registered = sandbox.consents(person_id)["EMARKETING"]["Registered"]

    run_onboarding(redis_conn, settings, person_id)
    run_onboarding(redis_conn, settings, person_id)  # running again records nothing new

    found = entries_of(ledger, person_id, "crm.consent_changed")
    assert [(entry["purpose"], entry["legal_basis"]) for entry in found] == [
        ("EMARKETING", "61A")]
    assert parse_iso(found[0]["crm_registered"]) == parse_iso(registered)
    term_ends = parse_iso(registered) + timedelta(days=730)  # 24 months, give or take a day

    def due(moment):
        return [person for person, _ in due_consents(services.config, MARKETING,
                                                     ledger.query("EMARKETING"), moment)]
    assert due(term_ends - timedelta(days=35)) == []
    assert due(term_ends - timedelta(days=20)) == [person_id]


@pytest.fixture
def reporting(connector_env, tmp_path):
    """The connector's environment with E-marketing's consent lapsing with on_expiry: report
    and no reminder, on a Redis database no worker takes jobs from (db 4)."""
    path = shipped_config_copy(tmp_path)
    edit_file(path, "    remind_before: 30 days", "")
    edit_file(path, "on_expiry: withdraw", "on_expiry: report")
    return own_database(connector_env, 4, CONSENT_CONFIG=str(path))


def test_with_on_expiry_report_a_lapsed_consent_is_recorded_once_and_left_in_the_crm(
        reporting, sandbox, evidence_database):
    env, redis_conn = reporting
    person_id = sandbox.create_person("Report", "Tester", "report.expiry@example.org")
    consent_given_days_ago(sandbox, evidence_database, person_id, 740)  # lapsed ~10 days ago
    services = build_services(Settings.from_env(env))
    try:
        summary = expiry_pass(services)
        assert (summary["report"], summary["queued"]) == (1, 1)
        job = Queue(BACKFILL, connection=redis_conn).jobs[0]
        assert job.args == (person_id, "e_marketing", summary["as_of"])
        moment = now()
        assert check_consent_with(services, person_id, "e_marketing", moment,
                                  job.id).startswith("reported: the consent lapsed on ")
        assert check_consent_with(services, person_id, "e_marketing", moment,
                                  "again").startswith("nothing: lapsed and reported")
        assert expiry_pass(services)["report"] == 0
    finally:
        services.database.dispose()
    assert sandbox.consents(person_id)["EMARKETING"]["LegalBaseKey"] == "61A"
    lapsed = entries_of(Ledger(services.database), person_id, "consent.lapsed")
    assert len(lapsed) == 1 and lapsed[0]["on_expiry"] == "report"

    listed = run_command(env, "expiry", "report")
    assert listed.returncode == 0, listed.stderr
    assert f"{person_id},EMARKETING," in listed.stdout
    assert "lapsed and reported: left in the CRM for you to decide" in listed.stdout
    assert "1 consent(s) due for renewal or lapsed" in listed.stderr


def test_expiry_run_queues_each_consent_once_and_says_so(reporting, sandbox, evidence_database):
    env, redis_conn = reporting
    person_id = sandbox.create_person("Run", "Tester", "run.expiry@example.org")
    consent_given_days_ago(sandbox, evidence_database, person_id, 740)

    first = run_command(env, "expiry", "run")
    again = run_command(env, "expiry", "run")

    assert first.returncode == 0, first.stderr
    assert "0 due for a re-permission mail, 0 lapsed (to withdraw), 1 lapsed (to report); " \
           "1 job(s) queued on the bulk queue\n" in first.stdout
    assert again.stdout.endswith("0 job(s) queued on the bulk queue (1 queued by an earlier "
                                 "pass)\n")
    assert [job.args[0] for job in Queue(BACKFILL, connection=redis_conn).jobs] == [person_id]
