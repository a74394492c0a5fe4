"""Who agreed to an older consent text: when a purpose's notice version changes (a new text
the person agrees to), the persons whose consent rests on an earlier version are found in the
consent ledger. Their consent stays until they act or it lapses (issue 14); this module only
finds them.

``decide_older_consents`` is pure: it reads a purpose's ledger entries (oldest first) and
says who; ``older_consents`` reads the entries (connector.evidence.ledger's index on purpose,
notice version and time) and asks it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from connector.consent import ConsentConfig, Purpose, fold_key
from connector.evidence.ledger import Ledger


@dataclass(frozen=True)
class OlderConsent:
    """A person whose consent to a purpose rests on another text than the current one.

    ``version`` is the notice version they agreed to; None when the ledger recorded none (a
    consent a CRM user entered, or one recorded before versions were)."""

    person_id: int
    version: str | None
    at: str


def decide_older_consents(entries: Iterable[Mapping[str, str]], current_version: str,
                          withdrawn_keys: Iterable[str]) -> list[OlderConsent]:
    """The persons whose latest recorded state of the purpose is a consent (any legal basis
    but the withdrawal marker) given to another notice version than ``current_version``, by
    person id.

    Args:
        entries: the purpose's ledger entries, oldest first, each with its ``person_id``
            (``Ledger.query``); entries without a legal basis (mails, erasures) are skipped.
        current_version: the purpose's notice version in the purposes file now.
        withdrawn_keys: the CRM keys of the withdrawal marker (WITHDRAWN).
    """
    withdrawn = {fold_key(key) for key in withdrawn_keys}
    latest: dict[str, Mapping[str, str]] = {}
    for entry in entries:
        if entry.get("legal_basis"):
            latest[entry["person_id"]] = entry
    older = [OlderConsent(int(person_id), entry.get("notice_version"), entry["at"])
             for person_id, entry in latest.items()
             if fold_key(entry["legal_basis"]) not in withdrawn
             and entry.get("notice_version") != current_version]
    return sorted(older, key=lambda consent: consent.person_id)


def older_consents(ledger: Ledger, config: ConsentConfig, purpose: Purpose) -> list[OlderConsent]:
    """Read ``purpose``'s ledger and say who agreed to an older text (decide_older_consents).

    Raises:
        ValueError: the purpose has no notice (nobody agrees to a text for it).
        sqlalchemy.exc.SQLAlchemyError: the evidence database cannot be read.
    """
    if purpose.notice is None:
        raise ValueError(f"purpose '{purpose.key}' has no notice: nobody agrees to a text "
                         f"for it")
    withdrawn = [basis.crm_key for basis in config.legal_bases.values() if basis.withdrawn]
    return decide_older_consents(ledger.query(purpose.crm_key), purpose.notice.version,
                                 withdrawn)
