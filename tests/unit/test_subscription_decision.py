"""Subscriptions under E-marketing: what a person's choice implies and which shipment types
change. Pure rules, no CRM."""

from connector.consent import (decide_preference_changes, decide_subscription_changes,
                               resolve_subscription_choices)
from connector.crm.types import ShipmentType
from tests.factories import record, shipped_config

CONFIG = shipped_config()
TYPES = (ShipmentType(1, "Newsletter", False), ShipmentType(2, "Event invitations", False),
         ShipmentType(3, "Product news", False))
CONSENT = record("EMARKETING", "61A", "WEBFORM")
WITHDRAWN = record("EMARKETING", "WITHDRAWN", "WEBFORM")


def types(*selected_ids):
    return tuple(ShipmentType(t.id, t.name, t.id in selected_ids) for t in TYPES)


def test_subscribing_without_consent_gives_the_consent_in_the_same_save():
    choices, wanted = resolve_subscription_choices(CONFIG, [], TYPES, {}, {"newsletter": True})
    assert choices == {"e_marketing": True}
    assert wanted == {"newsletter": True}
    writes = decide_preference_changes(CONFIG, [], choices)
    assert [(w.purpose.key, w.legal_basis.crm_key) for w in writes] == [("e_marketing", "61A")]
    assert "notice 2026-01" in writes[0].comment


def test_subscribing_after_a_withdrawal_gives_the_consent_again():
    choices, _ = resolve_subscription_choices(CONFIG, [WITHDRAWN], TYPES, {},
                                              {"product_news": True})
    assert choices == {"e_marketing": True}


def test_subscribing_with_consent_in_place_changes_no_consent():
    choices, wanted = resolve_subscription_choices(CONFIG, [CONSENT], TYPES, {},
                                                   {"newsletter": True})
    assert choices == {} and wanted == {"newsletter": True}


def test_turning_e_marketing_off_unsubscribes_from_all_selected():
    choices, wanted = resolve_subscription_choices(CONFIG, [CONSENT], types(1, 3),
                                                   {"e_marketing": False}, {})
    assert choices == {"e_marketing": False}
    assert wanted == {"newsletter": False, "product_news": False}


def test_withdrawing_and_ticking_in_the_same_save_the_withdrawal_wins():
    _, wanted = resolve_subscription_choices(CONFIG, [CONSENT], types(), {"e_marketing": False},
                                             {"newsletter": True})
    assert wanted == {"newsletter": False}


def test_other_saves_leave_shipment_types_a_crm_user_ticked_without_consent_alone():
    _, wanted = resolve_subscription_choices(CONFIG, [WITHDRAWN], types(2), {}, {})
    assert wanted == {}
    _, wanted = resolve_subscription_choices(CONFIG, [WITHDRAWN], types(2, 3), {},
                                             {"product_news": False})
    assert wanted == {"product_news": False}


def test_unknown_subscription_keys_are_ignored():
    choices, wanted = resolve_subscription_choices(CONFIG, [CONSENT], TYPES, {}, {"spam": True})
    assert (choices, wanted) == ({}, {})


def test_only_differing_shipment_types_change_matched_by_name_and_id():
    changes = decide_subscription_changes(CONFIG, types(1),
                                          {"newsletter": True, "event_invitations": True,
                                           "product_news": False})
    assert [(c.shipment_type.id, c.previous, c.now) for c in changes] == [
        (2, "unsubscribed", "subscribed")]


def test_names_match_without_regard_to_case_and_deleted_types_are_skipped():
    current = (ShipmentType(7, "NEWSLETTER", False), ShipmentType(3, "Product news", False, True))
    changes = decide_subscription_changes(CONFIG, current, {"newsletter": True,
                                                            "product_news": True})
    assert [c.shipment_type.id for c in changes] == [7]


def test_applying_the_changes_and_deciding_again_changes_nothing():
    changes = decide_subscription_changes(CONFIG, types(), {"newsletter": True})
    after = tuple(ShipmentType(t.id, t.name, t.selected or t.id == 1) for t in TYPES)
    assert changes and decide_subscription_changes(CONFIG, after, {"newsletter": True}) == []


def test_the_export_shows_a_subscription_change_in_its_history():
    from connector.exports.report import history_line
    from connector.exports.workbook import change_text, details_text
    from connector.i18n import text_or

    entry = {"id": "1-0", "at": "2026-11-29T10:00:00.000+00:00", "action": "subscription.changed",
             "subscription": "newsletter", "shipment_type": "1 Newsletter",
             "change": "subscribed → unsubscribed", "actor": "person", "token_id": "abc",
             "notice_version": "2026-01", "via": "one-click"}
    line = history_line(CONFIG, entry, "nb")
    assert text_or("export", f"action.{line.action}", "nb", line.action) == "Abonnement endret"
    assert change_text(line, "nb") == "subscribed → unsubscribed"
    details = details_text(line)
    assert "shipment_type: 1 Newsletter" in details and "via: one-click" in details
    assert "change:" not in details
    assert (line.token_id, line.notice_version) == ("abc", "2026-01")
