"""dry_run.plan, the dry run of a retry, decides as the job itself does."""

from types import SimpleNamespace

from connector.crm.types import ConsentRecord, Person, ShipmentType
from tests.factories import shipped_config
from connector.support.dry_run import plan


class OneRecordCRM:
    def __init__(self, person):
        self.person = person

    def get_person(self, person_id):
        return self.person


def test_a_save_that_only_subscribed_plans_the_consent_it_implies():
    person = Person(id=7, first_name="A", last_name="B", email=None, language=None,
                    company_name=None, created_by_associate_id=None,
                    consents=(ConsentRecord("STORE", "61F", "USER"),),
                    shipment_types=(ShipmentType(1, "Newsletter", False),))
    services = SimpleNamespace(config=shipped_config(), crm=OneRecordCRM(person))
    job = SimpleNamespace(id="j1", meta={"person_id": 7, "step": "preferences"},
                          func_name="workers.jobs.apply_preferences",
                          args=(7, {}, {"token_id": "t1"}, {"newsletter": True}), kwargs={})

    result = plan(services, job)

    assert result.problem is None
    assert [(w.purpose, w.legal_basis) for w in result.writes] == [("EMARKETING", "61A")]
