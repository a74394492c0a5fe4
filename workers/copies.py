"""The job that mails a person the copy of their data they asked for on their page (GDPR Art.
15(3)). A module of its own: it needs the exports, which the CRM events' jobs (workers.jobs)
never load."""

from connector.exports.report import export_filename, own_report
from connector.exports.workbook import render_workbook
from connector.mail.copy import render_copy
from connector.plans import mail_sent_entry
from connector.services import Services
from workers.jobs import current_job_id, deliver_counted, one_job_per_person, person_to_mail
from workers.worker import current_services


def send_copy(person_id: int, language: str) -> str:
    """Mail the person a copy of their data (send_copy_with)."""
    return send_copy_with(current_services(), person_id, language, current_job_id())


@one_job_per_person
def send_copy_with(services: Services, person_id: int, language: str,
                   job_id: str | None) -> str:
    """Mail the person their export's workbook, read now, to the address on record, in
    ``language``; the ledger records the mail. The same address rules as the confirmation
    mail: several addresses or a line break fail for support, no address sends nothing."""
    person, decision = person_to_mail(services, person_id)
    if not decision.send:
        return f"not sent: {decision.reason}"
    report = own_report(services.config, person, services.ledger.entries(person.id),
                        language=language, connector_associate_id=services.settings.associate_id)
    message = render_copy(services.config, person, render_workbook(report),
                          export_filename(person.id, "xlsx"), services.settings.mail_from,
                          language)
    deliver_counted(services, message)
    services.ledger.record(person.id, mail_sent_entry("copy", None, message["Message-ID"],
                                                      job_id))
    return "sent"
