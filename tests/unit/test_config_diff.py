"""diff_config: the purposes file against the CRM's lists."""

from connector.config_diff import CRMListItem, diff_config, diff_subscriptions
from connector.crm.types import ShipmentType
from tests.factories import shipped_config

SUPEROFFICE_DEFAULTS = {
    "purposes": [CRMListItem("STORE", "Sales and service"), CRMListItem("EMARKETING", "E-marketing")],
    "legal_bases": [CRMListItem("61A", "Consent"), CRMListItem("61B", "Contract"),
                    CRMListItem("61F", "Legitimate interest"), CRMListItem("WITHDRAWN", "Withdrawn")],
    "sources": [CRMListItem("USER", "Registered by our staff"), CRMListItem("WEBFORM", "Web form"),
                CRMListItem("API", "Another system (API)")],
}


def messages(lists):
    return [(d.problem, d.message) for d in diff_config(shipped_config(), lists)]


def test_the_shipped_config_matches_superoffice_defaults():
    assert messages(SUPEROFFICE_DEFAULTS) == []


def test_a_key_missing_in_the_crm_is_a_problem():
    lists = SUPEROFFICE_DEFAULTS | {"purposes": [CRMListItem("STORE", "Sales and service")]}
    assert messages(lists) == [
        (True, "purpose 'e_marketing' (crm_key EMARKETING): no such key in the CRM's list")]


def test_an_inactive_key_is_a_problem_and_keys_compare_without_case():
    lists = SUPEROFFICE_DEFAULTS | {"sources": [
        CRMListItem("user", "Registered by our staff"), CRMListItem("WEBFORM", "Web form", False),
        CRMListItem("API", "Another system (API)")]}
    assert messages(lists) == [(True, "source 'web_form' (crm_key WEBFORM): inactive in the CRM")]


def test_different_names_and_unused_crm_rows_are_noted_after_problems():
    lists = SUPEROFFICE_DEFAULTS | {"legal_bases": SUPEROFFICE_DEFAULTS["legal_bases"][:2] + [
        CRMListItem("61F", "Berettiget interesse"), CRMListItem("WITHDRAWN", "Withdrawn"),
        CRMListItem("61C", "Legal obligation")]}
    assert messages(lists) == [
        (False, "legal basis 'legitimate_interest' (crm_key 61F): named 'Legitimate interest' "
                "here and 'Berettiget interesse' in the CRM"),
        (False, "legal basis 61C 'Legal obligation' is in the CRM but not in the config"),
    ]


def test_subscriptions_are_checked_against_the_crms_shipment_types():
    config = shipped_config()  # Newsletter (by name), id 2, Product news (by name)
    crm = (ShipmentType(1, "Newsletter", False), ShipmentType(2, "Event invitations", False),
           ShipmentType(3, "Product news", False, deleted=True))

    found = diff_subscriptions(config, crm)

    assert [(d.problem, d.message) for d in found] == [
        (True, "subscription 'product_news' (shipment_type 'Product news'): deleted in the "
               "CRM's shipment types; it has 'Newsletter', 'Event invitations'; it would show on "
               "nobody's page")]
    assert diff_subscriptions(config, crm[:1])[0].message.startswith(
        "subscription 'event_invitations' (shipment_type 2): not in the CRM's shipment types")
    assert [d.problem for d in diff_subscriptions(config, None)] == [False]
