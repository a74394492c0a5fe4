"""The jobs run in this process, without a worker: the session's real Redis and evidence
database, the outbox mailer and a CRM that keeps a person in memory and records every call in
order."""

from dataclasses import replace
from email import message_from_bytes, policy

import pytest

from connector.evidence import facts
from connector.crm.types import ConsentRecord, Person, ShipmentType
from connector.exceptions import MailError
from connector.pending import mark_pending, pending_choices
from connector.services import build_services
from workers.jobs import (apply_preferences_with, onboard_with, record_crm_changes_with,
                          send_fresh_link_with)

pytestmark = pytest.mark.integration

PERSON = Person(id=12, first_name="Kari", last_name="Nordmann", email="kari@example.no",
                language="nb", company_name=None, created_by_associate_id=None, consents=(),
                shipment_types=(ShipmentType(1, "Newsletter", selected=False),))


class MemoryCRM:
    """One person in memory; ``calls`` lists what the jobs asked, in order."""

    def __init__(self, person: Person):
        self.person = person
        self.calls: list[tuple] = []

    def get_person(self, person_id: int) -> Person:
        self.calls.append(("get_person", person_id))
        return self.person

    def set_consent(self, person_id, purpose, source, legal_basis, comment) -> None:
        self.calls.append(("set_consent", person_id, purpose, legal_basis))
        rows = [r for r in self.person.consents if r.purpose != purpose]
        self.person = replace(self.person, consents=(*rows, ConsentRecord(purpose, legal_basis,
                                                                          source, comment)))

    def set_shipment_types(self, person_id, selection, current) -> None:
        self.calls.append(("set_shipment_types", person_id, dict(selection)))
        self.person = replace(self.person, shipment_types=tuple(
            replace(t, selected=selection.get(t.id, t.selected)) for t in current))


class RefusingMailer:
    def deliver(self, message):
        raise MailError("mail server unreachable: 127.0.0.1:25 refused", permanent=False)


class DyingMailer:
    """Hands the mail over, then the work horse dies before anything is recorded."""

    def __init__(self, mailer):
        self.mailer = mailer

    def deliver(self, message):
        self.mailer.deliver(message)
        raise SystemExit("the work horse was killed right after the mail server took the mail")


@pytest.fixture
def services(settings, redis_conn, tmp_path):
    """Services on the session's Redis with the CRM in memory and mail into tmp_path/outbox."""
    return build_services(replace(settings, smtp_url=None, data_dir=tmp_path),
                          connection=redis_conn, crm=MemoryCRM(PERSON), redis_timeout=None)


def outbox(services):
    return sorted(services.settings.outbox_dir.glob("*.eml"))


def actions(services, person_id=PERSON.id):
    return [entry["action"] for entry in services.ledger.entries(person_id)]


def test_onboarding_writes_the_default_mails_once_and_records_both(services):
    first = onboard_with(services, PERSON.id, "e1", "j1")
    again = onboard_with(services, PERSON.id, "e2", "j2")

    assert first == {"person_id": 12, "written": ["STORE"], "mail": "sent"}
    assert again == {"person_id": 12, "written": [], "mail": "already sent"}
    assert [call[0] for call in services.crm.calls] == ["get_person", "set_consent",
                                                         "get_person"]
    [mail] = outbox(services)
    message = message_from_bytes(mail.read_bytes(), policy=policy.default)
    assert message["To"] == PERSON.email and message["Content-Language"] == "nb"
    assert actions(services) == ["consent.recorded", "mail.sent", "person.onboarded"]
    assert services.ledger.entries(PERSON.id)[1]["message_id"] == message["Message-ID"]
    assert facts.onboarded(services.database, [PERSON.id]) == [True]


def test_a_mail_that_fails_releases_its_claim_so_the_retry_sends_it(services):
    refusing = replace(services, mailer=RefusingMailer())

    with pytest.raises(MailError):
        onboard_with(refusing, PERSON.id, "e1", "j1")
    assert facts.confirmation_mail_state(services.database, PERSON.id) is None
    assert onboard_with(services, PERSON.id, "e1", "j1")["mail"] == "sent"
    # the consent written once, the onboarding recorded once
    assert actions(services) == ["consent.recorded", "mail.sent", "person.onboarded"]


def test_a_claim_left_by_an_attempt_that_died_is_taken_over_and_the_mail_goes_again(services):
    # The person's jobs run one at a time (one_job_per_person), so a claim still held when the
    # next job runs belongs to an attempt that died mid-send: waiting would only delay the mail.
    assert facts.claim_confirmation_mail(services.database, PERSON.id, "j0") is facts.Claim.CLAIMED

    assert onboard_with(services, PERSON.id, "e1", "j1")["mail"] == "sent"

    assert len(outbox(services)) == 1
    sent = [e for e in services.ledger.entries(PERSON.id) if e["action"] == "mail.sent"]
    assert sent[0]["note"] == "sent again after an interrupted send"
    assert facts.confirmation_mail_state(services.database, PERSON.id) == facts.SENT


def test_preferences_write_the_consent_before_the_subscription_and_clear_their_marks(services):
    mark_pending(services.redis, PERSON.id, {"subscription:newsletter": True}, "j5")
    proof = {"token_id": "t1", "submitted_at": "2026-11-29T10:00:00+00:00"}

    summary = apply_preferences_with(services, PERSON.id, {}, proof, {"newsletter": True}, "j5")

    assert summary == {"person_id": 12, "written": ["EMARKETING"], "shipment_types": {1: True}}
    assert [call[0] for call in services.crm.calls] == ["get_person", "set_consent",
                                                         "set_shipment_types"]
    assert actions(services) == ["consent.changed", "subscription.changed"]
    assert pending_choices(services.redis, PERSON.id) == {}


def test_crm_changes_are_recorded_once(services):
    services.crm.person = replace(PERSON, consents=(ConsentRecord("STORE", "WITHDRAWN", "USER"),))

    assert record_crm_changes_with(services, PERSON.id, "e7")["recorded"] == ["STORE"]
    assert record_crm_changes_with(services, PERSON.id, "e8")["recorded"] == []


def test_a_fresh_link_goes_only_to_an_address_on_record(services):
    assert send_fresh_link_with(services, PERSON.id, "j9") == "sent"
    services.crm.person = replace(PERSON, email=None)
    assert send_fresh_link_with(services, PERSON.id, "j10") == (
        "not sent: the person has no email address")
    assert len(outbox(services)) == 1
    assert actions(services) == ["mail.sent"]


def test_a_mail_whose_sender_died_mid_send_goes_again_with_the_same_message_id_and_says_so(
        services):
    dying = replace(services, mailer=DyingMailer(services.mailer))
    with pytest.raises(SystemExit):
        onboard_with(dying, PERSON.id, "e1", "j1")
    message_id = read(outbox(services)[0])["Message-ID"]
    assert facts.confirmation_mail_state(services.database, PERSON.id) == facts.SENDING

    again = onboard_with(services, PERSON.id, "e1", "j2")

    assert again["mail"] == "sent"
    mails = [read(path) for path in outbox(services)]
    assert [m["Message-ID"] for m in mails] == [message_id, message_id]  # one message to the reader
    assert message_id.startswith(f"<confirmation.{PERSON.id}.")
    [sent] = [e for e in services.ledger.entries(PERSON.id) if e["action"] == "mail.sent"]
    assert sent["note"] == "sent again after an interrupted send"
    assert facts.confirmation_mail_state(services.database, PERSON.id) == facts.SENT
    assert onboard_with(services, PERSON.id, "e1", "j3")["mail"] == "already sent"


def test_a_refused_delivery_forgets_its_attempt_so_the_retry_is_no_resend(services):
    refusing = replace(services, mailer=RefusingMailer())
    with pytest.raises(MailError):
        onboard_with(refusing, PERSON.id, "e1", "j1")

    onboard_with(services, PERSON.id, "e1", "j2")

    sent = [e for e in services.ledger.entries(PERSON.id) if e["action"] == "mail.sent"]
    assert len(sent) == 1 and "note" not in sent[0]


def read(path):
    return message_from_bytes(path.read_bytes(), policy=policy.default)
