"""decide_older_consents: who agreed to another consent text than the current one, from a
purpose's ledger entries."""

from connector.reconsent import OlderConsent, decide_older_consents


def entry(person_id, legal_basis=None, version=None, at="2026-11-01T10:00:00.000+00:00",
          **other):
    found = {"person_id": str(person_id), "at": at, "action": "consent.changed", **other}
    if legal_basis:
        found["legal_basis"] = legal_basis
    if version:
        found["notice_version"] = version
    return found


def test_only_persons_whose_latest_consent_rests_on_another_version_are_found():
    entries = [
        entry(1, "61A", "2026-01"),                                   # older: found
        entry(2, "61A", "2026-01"), entry(2, "WITHDRAWN", "2026-01"),  # withdrew since
        entry(3, "61A", "2026-01"), entry(3, "61A", "2026-02"),        # agreed to the new one
        entry(4, "61A"),                                              # a CRM user's entry
        entry(5, "61A", "2026-01"), entry(5, action="mail.sent", mail="new-notice"),
    ]
    assert decide_older_consents(entries, "2026-02", ["WITHDRAWN"]) == [
        OlderConsent(1, "2026-01", "2026-11-01T10:00:00.000+00:00"),
        OlderConsent(4, None, "2026-11-01T10:00:00.000+00:00"),
        OlderConsent(5, "2026-01", "2026-11-01T10:00:00.000+00:00")]


def test_the_withdrawal_marker_is_compared_as_the_crm_does_and_nobody_is_found_when_all_agreed():
    entries = [entry(1, " withdrawn ", "2026-01"), entry(2, "61A", "2026-02")]
    assert decide_older_consents(entries, "2026-02", ["WITHDRAWN"]) == []
