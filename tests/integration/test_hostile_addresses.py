"""A CRM email field that holds more than one address, or a line break, never puts a second
recipient in a mail: no mail goes out, the consents are still written, and the job fails with
a reason support can read (and that does not quote the address)."""

import pytest
from rq.job import JobStatus

from tests.integration.test_onboarding import run_onboarding

pytestmark = pytest.mark.integration

HOSTILE = [
    "victim@example.com, other@evil.example",
    "victim@example.com; other@evil.example",
    "Victim <victim@example.com>, Other <other@evil.example>",
    "victim@example.com\r\nBcc: other@evil.example",
    "victim@example.com\nother@evil.example",
    "victim@example.com other@evil.example",
]


@pytest.mark.parametrize("address", HOSTILE)
def test_an_email_field_with_a_second_recipient_gets_no_mail_and_a_failed_job(
        sandbox, worker, redis_conn, settings, smtp_server, address):
    person_id = sandbox.create_person("Victim", "Person", address)

    job = run_onboarding(redis_conn, settings, person_id)

    assert job.get_status() == JobStatus.FAILED
    reason = job.meta["reason"]
    assert "email address in the CRM cannot be used" in reason and "retry this job" in reason
    assert "@" not in reason and "evil" not in reason
    assert job.meta["attempts"][-1]["permanent"] is True  # no 80 minutes of retries
    assert sandbox.consents(person_id)["STORE"]["LegalBaseKey"] == "61F"  # consents written
    assert not any("evil" in recipient for recipient in smtp_server.sink.recipients)
    assert not any("victim" in recipient for recipient in smtp_server.sink.recipients)


def test_one_valid_address_is_mailed_to_that_address_alone(sandbox, worker, redis_conn,
                                                            settings, smtp_server):
    person_id = sandbox.create_person("Single", "Address", "single.address@example.com")

    job = run_onboarding(redis_conn, settings, person_id)

    assert job.get_status() == JobStatus.FINISHED, job.meta
    assert smtp_server.sink.to("single.address@example.com")
    assert "single.address@example.com" in smtp_server.sink.recipients
