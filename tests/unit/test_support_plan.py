"""dry_run.plan, the dry run of a retry, decides as the job itself does."""

from dataclasses import replace
from types import SimpleNamespace

from connector.crm.types import ConsentRecord, Person, ShipmentType
from connector.support.dry_run import plan
from tests.factories import shipped_config


class OneRecordCRM:
    def __init__(self, person):
        self.person = person

    def get_person(self, person_id):
        return self.person


PERSON = Person(id=7, first_name="A", last_name="B", email=None, language=None,
                company_name=None, created_by_associate_id=None,
                consents=(ConsentRecord("STORE", "61F", "USER"),),
                shipment_types=(ShipmentType(1, "Newsletter", False),))


class KnownLedger:
    """What the ledger last knew: STORE on 61F from USER."""

    def last_known_consents(self, person_id):
        return {"STORE": {"action": "consent.recorded", "legal_basis": "61F", "source": "USER"}}


def job(function: str, *args, **kwargs) -> SimpleNamespace:
    return SimpleNamespace(id="j1", meta={"person_id": 7, "step": "x"},
                           func_name=f"workers.jobs.{function}", args=(7, *args), kwargs=kwargs)


def test_a_save_that_only_subscribed_plans_the_consent_it_implies():
    services = SimpleNamespace(config=shipped_config(), crm=OneRecordCRM(PERSON))
    result = plan(services, job("apply_preferences", {}, {"token_id": "t1"},
                                {"newsletter": True}))

    assert result.problem is None
    assert [(w.purpose, w.legal_basis) for w in result.writes] == [("EMARKETING", "61A")]


def test_the_dry_run_of_a_save_names_the_subscription_it_would_switch_read_by_name():
    services = SimpleNamespace(config=shipped_config(), crm=OneRecordCRM(PERSON))
    result = plan(services, job("apply_preferences", choices={}, proof={"token_id": "t1"},
                                subscriptions={"newsletter": True}))

    assert result.changes == ("would set shipment type 1 Newsletter: unsubscribed → subscribed",)


def test_the_dry_run_of_a_crm_change_says_what_it_would_record():
    person = replace(PERSON, consents=(ConsentRecord("STORE", "WITHDRAWN", "USER"),))
    services = SimpleNamespace(config=shipped_config(), crm=OneRecordCRM(person),
                               ledger=KnownLedger())
    result = plan(services, job("record_crm_changes", "e1"))

    assert result.problem is None and result.writes == ()
    assert result.changes == ("would record crm.consent_changed of STORE in the ledger",)


def test_a_job_the_connector_does_not_know_gets_no_dry_run():
    result = plan(SimpleNamespace(), job("something_else"))

    assert result.problem == "no dry run for workers.jobs.something_else: it is not a connector job"
