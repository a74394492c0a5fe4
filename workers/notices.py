"""The job that mails a person who agreed to an older consent text the purpose's new one
(``consent-connector reconsent``): once per person and version, with a fresh link to their
page. Their consent stays as it is until they act."""

from connector.mail.notice import render_new_notice
from connector.plans import mail_sent_entry
from connector.services import Services
from workers.jobs import current_job_id, deliver_counted, one_job_per_person, person_to_mail
from workers.worker import current_services

NEW_NOTICE = "new-notice"
"""The ``mail`` of the ledger entry that records the mail (with purpose and version)."""


def send_new_notice(person_id: int, purpose: str, agreed_version: str | None) -> str:
    """Mail the person ``purpose``'s new consent text (send_new_notice_with)."""
    return send_new_notice_with(current_services(), person_id, purpose, agreed_version,
                                current_job_id())


@one_job_per_person
def send_new_notice_with(services: Services, person_id: int, purpose: str,
                         agreed_version: str | None, job_id: str | None) -> str:
    """Mail the new text of ``purpose`` (its config key) as the purposes file has it now,
    unless the ledger shows this version's mail went to the person before; record the mail
    with the purpose and the version. A purpose removed from the file, or without a notice
    now, sends nothing."""
    config = services.config
    found = config.purposes.get(purpose)
    if found is None or found.notice is None:
        return f"not sent: purpose '{purpose}' has no consent text in the purposes file now"
    version = found.notice.version
    if any(entry.get("mail") == NEW_NOTICE and entry.get("purpose") == found.crm_key
           and entry.get("notice_version") == version
           for entry in services.ledger.entries(person_id)):
        return "already sent"
    person, decision = person_to_mail(services, person_id)
    if not decision.send:
        return f"not sent: {decision.reason}"
    settings = services.settings
    link = services.links.make_link(settings.public_base_url, person.id)
    message = render_new_notice(config, person, found, agreed_version, link.url, link.expires,
                                settings.mail_from)
    deliver_counted(services, message)
    services.ledger.record(person.id, mail_sent_entry(
        NEW_NOTICE, link.token_id, message["Message-ID"], job_id, purpose=found.crm_key,
        notice_version=version))
    return "sent"
