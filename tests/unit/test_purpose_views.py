"""describe_purposes and choose_language: what a person reads in the mail and on the page."""

from datetime import datetime, timezone

import pytest

from tests.factories import shipped_config
from connector.consent import (ACTIVE, NOT_GIVEN, NOT_RECORDED, WITHDRAWN, choose_language,
                               describe_purposes)
from connector.crm.types import ConsentRecord

CONFIG = shipped_config()
REGISTERED = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)


def test_a_new_person_with_the_default_reads_active_and_not_given():
    views = describe_purposes(CONFIG, [ConsentRecord("STORE", "61F", "USER", registered=REGISTERED)],
                              "en")
    assert [(v.name, v.status) for v in views] == [("Sales and service", ACTIVE),
                                                   ("E-marketing", NOT_GIVEN)]
    store = views[0]
    assert (store.legal_basis, store.source, store.registered) == (
        "Legitimate interest", "Registered by our staff", REGISTERED)
    assert store.legal_basis_description  # the plain explanation of the legal basis


def test_texts_come_in_the_persons_language():
    views = describe_purposes(CONFIG, [ConsentRecord("STORE", "61F", "USER")], "nb")
    assert views[0].name == "Salg og service"


def test_withdrawn_rows_read_withdrawn_and_consent_reads_active():
    views = describe_purposes(CONFIG, [ConsentRecord("STORE", "WITHDRAWN", "USER"),
                                       ConsentRecord("EMARKETING", "61A", "WEBFORM")], "en")
    assert [v.status for v in views] == [WITHDRAWN, ACTIVE]
    assert views[1].source == "Web form"


def test_a_purpose_without_consent_need_and_without_row_reads_not_recorded():
    views = describe_purposes(CONFIG, [], "en")
    assert [v.status for v in views] == [NOT_RECORDED, NOT_GIVEN]


def test_rows_the_config_does_not_know_are_shown_by_their_crm_keys_last():
    views = describe_purposes(CONFIG, [ConsentRecord("NEWSLETTER", "61X", "FAIR"),
                                       ConsentRecord("store", "61f", "user")], "en")
    assert views[0].status == ACTIVE and views[0].name == "Sales and service"
    assert (views[-1].name, views[-1].legal_basis, views[-1].source, views[-1].status) == (
        "NEWSLETTER", "61X", "FAIR", ACTIVE)


@pytest.mark.parametrize("code, expected", [
    ("nb", "nb"), ("nb-NO", "nb"), ("no", "nb"), ("SV_se", "sv"), ("de", "de"),
    ("fi", "en"), (None, "en"), ("", "en"),
])
def test_choose_language(code, expected):
    assert choose_language(CONFIG, code) == expected
