"""page_rows: what the page ticks and offers, from the CRM's rows and the pending choices."""

from dataclasses import replace

from tests.factories import shipped_config
from connector.crm.types import ConsentRecord, Person
from connector.web.page import page_rows

CONFIG = shipped_config()


def person(*consents):
    return Person(id=1, first_name="Ada", last_name="L", email=None, language=None,
                  company_name=None, created_by_associate_id=None, consents=tuple(consents))


def rows_by_key(*consents, pending=None, failed=()):
    return {row.key: row for row in page_rows(CONFIG, person(*consents), "en", pending or {},
                                              set(failed))}


def test_controls_follow_the_config():
    rows = rows_by_key()
    assert rows["sales_and_service"].control == "objection"
    assert rows["e_marketing"].control == "consent"
    assert rows["e_marketing"].notice_text == CONFIG.purposes["e_marketing"].notice.text["en"]


def test_an_objection_purpose_without_a_row_is_allowed_until_the_person_objects():
    rows = rows_by_key()
    assert rows["sales_and_service"].checked  # unticking it would record an objection
    assert not rows["e_marketing"].checked  # consent is never assumed


def test_withdrawn_rows_are_unticked_and_active_ones_ticked():
    rows = rows_by_key(ConsentRecord("STORE", "WITHDRAWN", "USER"),
                       ConsentRecord("EMARKETING", "61A", "WEBFORM"))
    assert not rows["sales_and_service"].checked
    assert rows["e_marketing"].checked


def test_pending_choices_show_what_the_person_chose_and_failed_ones_the_crm_state():
    pending = {"e_marketing": {"granted": True, "job_id": "j1"},
               "sales_and_service": {"granted": False, "job_id": "j2"}}
    rows = rows_by_key(ConsentRecord("STORE", "61F", "USER"), pending=pending,
                       failed={"sales_and_service"})
    assert (rows["e_marketing"].checked, rows["e_marketing"].pending) == (True, "saving")
    assert (rows["sales_and_service"].checked, rows["sales_and_service"].pending) == (True, "failed")


def test_purposes_the_config_does_not_know_are_shown_without_a_control():
    rows = page_rows(CONFIG, person(ConsentRecord("NEWSLETTER", "61A", "API")), "en", {}, set())
    assert (rows[-1].key, rows[-1].view.name, rows[-1].control) == ("", "NEWSLETTER", None)


def test_the_status_line_says_which_change_is_being_saved_and_a_failed_one_the_crm_state():
    pending = {"e_marketing": {"granted": False, "job_id": "j1"},
               "sales_and_service": {"granted": False, "job_id": "j2"}}
    rows = rows_by_key(ConsentRecord("STORE", "61F", "USER"),
                       ConsentRecord("EMARKETING", "61A", "WEBFORM"), pending=pending)
    assert rows["e_marketing"].status == "saving_withdrawal"
    assert rows["sales_and_service"].status == "saving_objection"

    pending = {"e_marketing": {"granted": True, "job_id": "j3"},
               "sales_and_service": {"granted": True, "job_id": "j4"}}
    rows = rows_by_key(ConsentRecord("STORE", "WITHDRAWN", "USER"), pending=pending)
    assert rows["e_marketing"].status == "saving_consent"
    assert rows["sales_and_service"].status == "saving_objection_withdrawn"

    rows = rows_by_key(ConsentRecord("EMARKETING", "61A", "WEBFORM"),
                       pending={"e_marketing": {"granted": False, "job_id": "j5"}},
                       failed={"e_marketing"})
    assert rows["e_marketing"].status == "status_active"
    assert rows["sales_and_service"].status == "status_not_recorded"


def test_a_consent_given_to_an_older_text_shows_that_version_and_its_text_when_kept():
    marketing = CONFIG.purposes["e_marketing"]
    kept = replace(marketing, notice=replace(marketing.notice,
                                             earlier={"2025-06": {"en": "I agreed then"}}))
    config = replace(CONFIG, purposes={**CONFIG.purposes, "e_marketing": kept})
    given = ConsentRecord("EMARKETING", "61A", "WEBFORM")

    def row(agreed, *consents, config=config):
        rows = page_rows(config, person(*consents), "en", {}, set(), agreed)
        return next(r for r in rows if r.key == "e_marketing")

    older = row({"EMARKETING": "2025-06"}, given)
    assert (older.agreed_version, older.agreed_text) == ("2025-06", "I agreed then")
    assert row({"EMARKETING": "2025-01"}, given).agreed_version == "2025-01"  # text not kept
    assert row({"EMARKETING": "2025-01"}, given).agreed_text == ""
    assert row({"EMARKETING": marketing.notice.version}, given).agreed_version is None
    assert row({"EMARKETING": "2025-06"}).agreed_version is None  # no consent now
    assert row({}, given).agreed_version is None  # no version recorded
