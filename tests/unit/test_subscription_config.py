"""The subscriptions section of config/purposes.yaml: loaded into Subscriptions, every bad
edit refused with its line."""

from pathlib import Path

from connector.config import check_config, load_config
from tests.unit.test_config import VALID, assert_problem, only_problem, write

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "purposes.yaml"

SUBSCRIPTIONS = """\
subscriptions:
  newsletter:
    purpose: e_marketing
    shipment_type: "Newsletter"
    name: {en: Newsletter, nb: Nyhetsbrev}
    description: {en: Monthly}
  events:
    purpose: e_marketing
    shipment_type: 2
    name: {en: Event invitations}
"""
FIRST = len(VALID.splitlines()) + 1  # the line "subscriptions:"


def with_subscriptions(tmp_path: Path, text: str = SUBSCRIPTIONS, **lines: str) -> Path:
    rows = (VALID + text).splitlines()
    for name, line in lines.items():
        rows[int(name.removeprefix("line_")) - 1] = line
    return write(tmp_path, "\n".join(rows) + "\n")


def test_the_shipped_file_maps_three_subscriptions_under_e_marketing():
    config = load_config(SHIPPED)
    assert list(config.subscriptions) == ["newsletter", "event_invitations", "product_news"]
    assert {s.purpose for s in config.subscriptions.values()} == {"e_marketing"}
    assert config.subscriptions["event_invitations"].shipment_type_id == 2
    assert config.subscriptions["newsletter"].shipment_type_name == "Newsletter"
    for subscription in config.subscriptions.values():
        assert set(subscription.name) == set(config.languages)
        assert set(subscription.description) == set(config.languages)


def test_subscriptions_load_by_name_and_by_id(tmp_path):
    config = load_config(with_subscriptions(tmp_path))
    newsletter, events = config.subscriptions.values()
    assert (newsletter.shipment_type_name, newsletter.shipment_type_id) == ("Newsletter", None)
    assert (events.shipment_type_name, events.shipment_type_id) == (None, 2)
    assert newsletter.description == {"en": "Monthly"}


def test_without_the_section_there_are_no_subscriptions(tmp_path):
    assert load_config(write(tmp_path, VALID)).subscriptions == {}


def test_an_unknown_purpose_is_refused_with_its_line(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 2}": "    purpose: e_marketin"})
    assert_problem(only_problem(path), FIRST + 2, "subscription 'newsletter'", "e_marketin",
                   "did you mean 'e_marketing'")


def test_a_purpose_without_consent_is_refused(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 2}": "    purpose: sales_and_service"})
    assert_problem(only_problem(path), FIRST + 2, "requires_consent")


def test_a_shipment_type_used_twice_is_refused(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 8}": '    shipment_type: "newsletter"'})
    assert_problem(only_problem(path), FIRST + 8, "subscription 'events'", "already used",
                   "'newsletter'", f"line {FIRST + 3}")


def test_the_same_id_twice_is_refused(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 3}": "    shipment_type: 2"})
    assert_problem(only_problem(path), FIRST + 8, "already used")


def test_a_name_without_english_is_refused(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 4}": "    name: {nb: Nyhetsbrev}"})
    assert_problem(only_problem(path), FIRST + 4, "subscription 'newsletter'", "English")


def test_a_missing_shipment_type_is_refused(tmp_path):
    rows = SUBSCRIPTIONS.splitlines()
    del rows[8]
    path = with_subscriptions(tmp_path, "\n".join(rows) + "\n")
    assert_problem(only_problem(path), FIRST + 6, "subscription 'events'", "shipment_type",
                   "required")


def test_a_bad_shipment_type_value_is_refused(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 8}": "    shipment_type: 0"})
    assert_problem(only_problem(path), FIRST + 8, "shipment type's id")


def test_an_unknown_field_suggests_the_right_one(tmp_path):
    path = with_subscriptions(tmp_path, **{f"line_{FIRST + 3}": '    shipment_typ: "Newsletter"'})
    problems = check_config(path)
    assert any(p.line == FIRST + 3 and "did you mean 'shipment_type'" in p.message
               for p in problems), problems
